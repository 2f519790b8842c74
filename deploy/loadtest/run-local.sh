#!/usr/bin/env bash
# The FractalMesh topology as local processes on loopback, no Docker engine needed: redis-server (when installed), a level
# service for level 1 and below, and the gateway running level 0 and calling it (distributed mode), all with the demo
# model. Waits until each is ready, runs the standard load-test profile against the gateway (concurrency 1, 4, 16; a
# bounded number of requests and seconds per step), saves the report, the logs and a /metrics scrape of the level service
# and of the gateway under out/loadtest/, and stops everything it started.
#
#   deploy/loadtest/run-local.sh                       # the pipeline (gateway + level-1 service), standard profile over gRPC
#   FM_MODE=embedded deploy/loadtest/run-local.sh      # the gateway alone, every level in its process
#   FM_MODE=compare deploy/loadtest/run-local.sh       # embedded, then the pipeline, same profile; then both side by side
#                                                      # with the ratios (pipeline/embedded at concurrency 1, 16 over 1)
#   FM_PROTOCOL=rest deploy/loadtest/run-local.sh      # over the REST bridge
#   FM_REQUESTS=2,4,16 FM_DURATION=30 deploy/loadtest/run-local.sh --num-iter 8,4   # shorter; extra arguments go to the load tool
#
# Settings (environment): FM_MODE (pipeline, embedded or compare), FM_CONFIGURATION (Release), FM_MODEL
# (models/emoji32-demo.safetensors), FM_CONCURRENCY (1,4,16), FM_REQUESTS (4,8,32), FM_DURATION (seconds per step, 60),
# FM_PROTOCOL (grpc), FM_GATEWAY_CONCURRENCY (the gateway's MaxConcurrentRequests, 16 in both modes: concurrent requests
# share every level's forward passes step by step), FM_TORCH_THREADS (libtorch threads of every process, 0: libtorch's
# choice; 1 on a CPU shared with other work),
# FM_CPUS (a taskset CPU list for the gateway and the level service, e.g. 1: on a machine shared with other work, keeps
# their many short wake-ups off cores busy with it), FM_GATEWAY_ARGS (more --Gateway:Key=value arguments), ports FM_GRPC_PORT (5080), FM_REST_PORT (5081), FM_GATEWAY_METRICS_PORT
# (9465), FM_LEVEL0_PORT (5100), FM_LEVEL0_METRICS_PORT (9463), FM_LEVEL1_PORT (5101), FM_LEVEL1_METRICS_PORT (9464), FM_REDIS_PORT (6390), FM_REDIS (0: no Redis),
# FM_WARMUP (requests sent one at a time and not counted before the profile, 8: a fresh level service reaches its
# steady speed only once .NET's tiered JIT has recompiled its hot paths), FM_SKIP_BUILD (1: use what is built),
# FM_OUT (out/loadtest).
set -euo pipefail
cd "$(dirname "$0")/../.."

config=${FM_CONFIGURATION:-Release}
mode=${FM_MODE:-pipeline}
model=${FM_MODEL:-models/emoji32-demo.safetensors}
grpc_port=${FM_GRPC_PORT:-5080}
rest_port=${FM_REST_PORT:-5081}
gateway_metrics_port=${FM_GATEWAY_METRICS_PORT:-9465}
level0_port=${FM_LEVEL0_PORT:-5100}
level0_metrics_port=${FM_LEVEL0_METRICS_PORT:-9463}
level1_port=${FM_LEVEL1_PORT:-5101}
metrics_port=${FM_LEVEL1_METRICS_PORT:-9464}
redis_port=${FM_REDIS_PORT:-6390}
out=${FM_OUT:-out/loadtest}
protocol=${FM_PROTOCOL:-grpc}
torch_threads=${FM_TORCH_THREADS:-0}
case $mode in
  pipeline|embedded|compare) ;;
  *) echo "FM_MODE=$mode: expected pipeline, embedded or compare" >&2; exit 2 ;;
esac

level_dll=services/FractalMesh.LevelService/bin/$config/net10.0/FractalMesh.LevelService.dll
gateway_dll=gateway/FractalMesh.Gateway/bin/$config/net10.0/FractalMesh.Gateway.dll
probe_dll=services/FractalMesh.HealthProbe/bin/$config/net10.0/FractalMesh.HealthProbe.dll
loadtest_dll=deploy/loadtest/FractalMesh.LoadTest/bin/$config/net10.0/FractalMesh.LoadTest.dll
cli_dll=services/FractalMesh.Cli/bin/$config/net10.0/fractalmesh.dll

if [[ "${FM_SKIP_BUILD:-0}" != 1 ]]; then
  for project in services/FractalMesh.LevelService gateway/FractalMesh.Gateway services/FractalMesh.HealthProbe deploy/loadtest/FractalMesh.LoadTest services/FractalMesh.Cli; do
    echo "building $project"
    dotnet build "$project" -c "$config" -nologo -v quiet
  done
fi
mkdir -p "$out"

ports=("$grpc_port" "$rest_port" "$gateway_metrics_port" "$level0_port" "$level0_metrics_port" "$level1_port" "$metrics_port")
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
  pids=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

probe() { dotnet "$probe_dll" "$@"; }
pinned=()
if [[ -n "${FM_CPUS:-}" ]]; then pinned=(taskset -c "$FM_CPUS"); fi
fail_with_log() { echo "$1; the last lines of $2:" >&2; tail -n 30 "$2" >&2; exit 1; }
scrape() { if command -v curl >/dev/null; then curl -fsS "$1" >"$2" && echo "metrics: $2"; fi; }

redis_args=()
if [[ $use_redis == 1 ]]; then
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$out/redis.log" 2>&1 &
  redis_pid=$!
  redis_args=("--Gateway:Redis=127.0.0.1:$redis_port")
  echo "redis-server on 127.0.0.1:$redis_port"
fi

# start_level1 LOGDIR: level 1 and the pixel head of the model, on FM_LEVEL1_PORT.
start_level1() {
  "${pinned[@]}" dotnet "$level_dll" --urls="http://127.0.0.1:$level1_port" \
    --Level:Model="$model" --Level:FirstLevel=1 --Level:TorchThreads="$torch_threads" \
    --Observability:MetricsUrl="http://127.0.0.1:$metrics_port/" \
    --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information >"$1/level1.log" 2>&1 &
  pids+=($!)
  probe grpc "http://127.0.0.1:$level1_port" readiness --wait 120 || fail_with_log "level1 did not become ready" "$1/level1.log"
  echo "level1 ready on 127.0.0.1:$level1_port (metrics http://127.0.0.1:$metrics_port/metrics)"
}

# start_level0 LOGDIR: level 0 of the model, calling level1, on FM_LEVEL0_PORT.
start_level0() {
  "${pinned[@]}" dotnet "$level_dll" --urls="http://127.0.0.1:$level0_port" \
    --Level:Model="$model" --Level:FirstLevel=0 --Level:LastLevel=0 --Level:NextAddresses:0="http://127.0.0.1:$level1_port" \
    --Level:TorchThreads="$torch_threads" --Observability:MetricsUrl="http://127.0.0.1:$level0_metrics_port/" \
    --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information >"$1/level0.log" 2>&1 &
  pids+=($!)
  probe grpc "http://127.0.0.1:$level0_port" readiness --wait 120 || fail_with_log "level0 did not become ready" "$1/level0.log"
  echo "level0 ready on 127.0.0.1:$level0_port (metrics http://127.0.0.1:$level0_metrics_port/metrics)"
}

# start_gateway embedded|pipeline LOGDIR: the gateway, every level in it (embedded), or no weights, calling level0 (pipeline).
start_gateway() {
  local levels=() concurrency
  if [[ $1 == pipeline ]]; then
    levels=("--Gateway:LevelAddresses:0=http://127.0.0.1:$level0_port")
  fi
  concurrency=${FM_GATEWAY_CONCURRENCY:-16}
  # shellcheck disable=SC2086 # FM_GATEWAY_ARGS is a list of arguments
  "${pinned[@]}" dotnet "$gateway_dll" --Gateway:ModelPath="$model" \
    --Gateway:GrpcUrl="http://127.0.0.1:$grpc_port" --Gateway:RestUrl="http://127.0.0.1:$rest_port" \
    --Gateway:MaxConcurrentRequests="$concurrency" --Gateway:MaxQueuedRequests=64 --Gateway:TorchThreads="$torch_threads" \
    "${levels[@]}" "${redis_args[@]}" ${FM_GATEWAY_ARGS:-} \
    --Observability:MetricsUrl="http://127.0.0.1:$gateway_metrics_port/" \
    --Logging:LogLevel:Default=Warning --Logging:LogLevel:Microsoft.Hosting.Lifetime=Information >"$2/gateway.log" 2>&1 &
  pids+=($!)
  probe http "http://127.0.0.1:$rest_port/healthz/ready" --wait 180 || fail_with_log "the gateway did not become ready" "$2/gateway.log"
  echo "gateway ($1, MaxConcurrentRequests $concurrency, libtorch threads $torch_threads${FM_CPUS:+, CPUs $FM_CPUS}) ready on 127.0.0.1:$grpc_port (gRPC) and 127.0.0.1:$rest_port (REST)"
}

# run_mode embedded|pipeline LOGDIR ARGS...: start the topology, run the profile, scrape the metrics, stop it.
status=0
run_mode() {
  local kind=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  if [[ $kind == pipeline ]]; then start_level1 "$dir"; start_level0 "$dir"; fi
  start_gateway "$kind" "$dir"
  if [[ $protocol == rest ]]; then target="http://127.0.0.1:$rest_port"; else target="http://127.0.0.1:$grpc_port"; fi
  dotnet "$loadtest_dll" --target "$target" --protocol "$protocol" \
    --concurrency "${FM_CONCURRENCY:-1,4,16}" --requests "${FM_REQUESTS:-4,8,32}" --duration "${FM_DURATION:-60}" \
    --classes 0,1,2,3,4,5,6,7,8 --warmup "${FM_WARMUP:-8}" --report "$dir/report.json" "$@" || status=$?
  scrape "http://127.0.0.1:$gateway_metrics_port/metrics" "$dir/gateway-metrics.txt"
  if [[ $kind == pipeline ]]; then
    scrape "http://127.0.0.1:$level0_metrics_port/metrics" "$dir/level0-metrics.txt"
    scrape "http://127.0.0.1:$metrics_port/metrics" "$dir/level1-metrics.txt"
    # Rows per forward pass at each level (histogram buckets of fractalmesh_level_batch_rows).
    for f in "$dir/level0-metrics.txt" "$dir/level1-metrics.txt"; do
      [[ -f $f ]] && grep -E '^fractalmesh_level_batch_rows_(bucket|count|sum)' "$f" | sed "s|^|$(basename "$f" -metrics.txt): |" || true
    done
  fi
  stop_all
}

if [[ $use_redis == 1 ]]; then
  stop_redis() { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
  trap 'stop_all; stop_redis' EXIT
fi

case $mode in
  pipeline|embedded) run_mode "$mode" "$out" "$@" ;;
  compare)
    echo "== ceiling: the in-process sampler at batch 1 and 16 (cfg ${FM_CFG:-1}, iterations ${FM_ITERS:-16,8}; no server)"
    dotnet "$cli_dll" bench --model "$model" --batches 1,16 --cfg "${FM_CFG:-1}" --iters "${FM_ITERS:-16,8}" --no-training --repeats 1 --threads "$torch_threads" \
      | tee "$out/ceiling.txt" || status=$?
    echo "== embedded: the gateway alone"
    run_mode embedded "$out/embedded" "$@"
    echo "== pipeline: the gateway (no weights), the level-0 service and the level-1 service (with the pixel head)"
    run_mode pipeline "$out/pipeline" "$@"
    echo "== embedded vs pipeline (cores: $(nproc); other load on this machine counts: see the load average $(cut -d' ' -f1-3 /proc/loadavg))"
    dotnet "$loadtest_dll" compare "embedded=$out/embedded/report.json" "pipeline=$out/pipeline/report.json" --out "$out/comparison.json" || status=$?
    ;;
esac
exit "$status"
