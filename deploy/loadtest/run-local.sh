#!/usr/bin/env bash
# The FractalMesh topology as local processes on loopback, no Docker engine needed: redis-server (when installed), a level
# service for level 1 and below, and the gateway, all with the demo model. Waits until each is ready, runs the standard
# load-test profile against the gateway (concurrency 1, 4, 16; a bounded number of requests and seconds per step), saves
# the report, the logs and a /metrics scrape of the level service under out/loadtest/, and stops everything it started.
#
#   deploy/loadtest/run-local.sh                       # the standard profile over gRPC
#   FM_PROTOCOL=rest deploy/loadtest/run-local.sh      # the same over the REST bridge
#   FM_REQUESTS=2,4,16 FM_DURATION=30 deploy/loadtest/run-local.sh --num-iter 8,4   # shorter; extra arguments go to the load tool
#
# Settings (environment): FM_CONFIGURATION (Release), FM_MODEL (models/emoji32-demo.safetensors), FM_CONCURRENCY (1,4,16),
# FM_REQUESTS (4,8,32), FM_DURATION (seconds per step, 60), FM_PROTOCOL (grpc), FM_GATEWAY_CONCURRENCY (the gateway's
# MaxConcurrentRequests, 2), FM_GATEWAY_ARGS (more --Gateway:Key=value arguments), ports FM_GRPC_PORT (5080),
# FM_REST_PORT (5081), FM_LEVEL1_PORT (5101), FM_LEVEL1_METRICS_PORT (9464), FM_REDIS_PORT (6390), FM_REDIS (0: no Redis),
# FM_SKIP_BUILD (1: use what is built), FM_OUT (out/loadtest).
set -euo pipefail
cd "$(dirname "$0")/../.."

config=${FM_CONFIGURATION:-Release}
model=${FM_MODEL:-models/emoji32-demo.safetensors}
grpc_port=${FM_GRPC_PORT:-5080}
rest_port=${FM_REST_PORT:-5081}
level1_port=${FM_LEVEL1_PORT:-5101}
metrics_port=${FM_LEVEL1_METRICS_PORT:-9464}
redis_port=${FM_REDIS_PORT:-6390}
out=${FM_OUT:-out/loadtest}
protocol=${FM_PROTOCOL:-grpc}

level_dll=services/FractalMesh.LevelService/bin/$config/net10.0/FractalMesh.LevelService.dll
gateway_dll=gateway/FractalMesh.Gateway/bin/$config/net10.0/FractalMesh.Gateway.dll
probe_dll=services/FractalMesh.HealthProbe/bin/$config/net10.0/FractalMesh.HealthProbe.dll
loadtest_dll=deploy/loadtest/FractalMesh.LoadTest/bin/$config/net10.0/FractalMesh.LoadTest.dll

if [[ "${FM_SKIP_BUILD:-0}" != 1 ]]; then
  for project in services/FractalMesh.LevelService gateway/FractalMesh.Gateway services/FractalMesh.HealthProbe deploy/loadtest/FractalMesh.LoadTest; do
    echo "building $project"
    dotnet build "$project" -c "$config" -nologo -v quiet
  done
fi
mkdir -p "$out"

ports=("$grpc_port" "$rest_port" "$level1_port" "$metrics_port")
if [[ "${FM_REDIS:-1}" != 0 ]] && command -v redis-server >/dev/null; then use_redis=1; ports+=("$redis_port"); else use_redis=0; fi
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use: stop what listens there or choose other FM_*_PORT settings" >&2
    exit 1
  fi
done

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

probe() { dotnet "$probe_dll" "$@"; }
fail_with_log() { echo "$1; the last lines of $2:" >&2; tail -n 30 "$2" >&2; exit 1; }

redis_args=()
if [[ $use_redis == 1 ]]; then
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$out/redis.log" 2>&1 &
  pids+=($!)
  redis_args=("--Gateway:Redis=127.0.0.1:$redis_port")
  echo "redis-server on 127.0.0.1:$redis_port"
fi

dotnet "$level_dll" --urls="http://127.0.0.1:$level1_port" \
  --Level:Model="$model" --Level:FirstLevel=1 --Level:MaxWaitMilliseconds=5 \
  --Observability:MetricsUrl="http://127.0.0.1:$metrics_port/" \
  --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information >"$out/level1.log" 2>&1 &
pids+=($!)
probe grpc "http://127.0.0.1:$level1_port" readiness --wait 120 || fail_with_log "level1 did not become ready" "$out/level1.log"
echo "level1 ready on 127.0.0.1:$level1_port (metrics http://127.0.0.1:$metrics_port/metrics)"

# shellcheck disable=SC2086 # FM_GATEWAY_ARGS is a list of arguments
dotnet "$gateway_dll" --Gateway:ModelPath="$model" \
  --Gateway:GrpcUrl="http://127.0.0.1:$grpc_port" --Gateway:RestUrl="http://127.0.0.1:$rest_port" \
  --Gateway:MaxConcurrentRequests="${FM_GATEWAY_CONCURRENCY:-2}" --Gateway:MaxQueuedRequests=64 "${redis_args[@]}" ${FM_GATEWAY_ARGS:-} \
  --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information >"$out/gateway.log" 2>&1 &
pids+=($!)
probe http "http://127.0.0.1:$rest_port/healthz/ready" --wait 180 || fail_with_log "the gateway did not become ready" "$out/gateway.log"
echo "gateway ready on 127.0.0.1:$grpc_port (gRPC) and 127.0.0.1:$rest_port (REST)"

if [[ $protocol == rest ]]; then target="http://127.0.0.1:$rest_port"; else target="http://127.0.0.1:$grpc_port"; fi
status=0
dotnet "$loadtest_dll" --target "$target" --protocol "$protocol" \
  --concurrency "${FM_CONCURRENCY:-1,4,16}" --requests "${FM_REQUESTS:-4,8,32}" --duration "${FM_DURATION:-60}" \
  --classes 0,1,2,3,4,5,6,7,8 --report "$out/report.json" "$@" || status=$?

if command -v curl >/dev/null; then
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$out/level1-metrics.txt" && echo "level1 metrics: $out/level1-metrics.txt"
fi
exit "$status"
