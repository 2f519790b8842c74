#!/usr/bin/env bash
# Makes the secrets docker-compose.yml and the Kubernetes manifests read (deploy/README.md, Security), as env files:
#   gateway.env  the API keys (Auth__ApiKeys__N__Name/Key/Role) and the level call secret (Gateway__LevelCallSecret)
#   level.env    the same level call secret for the level services (Level__CallSecret)
# Usage: deploy/make-secrets.sh [FOLDER] [NAME:ROLE ...]   FOLDER defaults to deploy/secrets (ignored by git); principals
# default to "admin:admin user:user". Existing files are kept: delete them to rotate. Prints each principal's key once.
# Kubernetes: kubectl create secret generic fractalmesh-gateway-secrets --from-env-file=deploy/secrets/gateway.env
#             kubectl create secret generic fractalmesh-level-secrets --from-env-file=deploy/secrets/level.env
set -euo pipefail
folder="${1:-$(dirname "$0")/secrets}"
shift || true
principals=("$@")
[ ${#principals[@]} -gt 0 ] || principals=(admin:admin user:user)
mkdir -p "$folder"
chmod 700 "$folder"
umask 077
if [ -e "$folder/gateway.env" ] || [ -e "$folder/level.env" ]; then
  echo "$folder/gateway.env or level.env exists: keeping them (delete both to make new ones)" >&2
  exit 0
fi
random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
secret="$(random)"
{
  echo "Gateway__LevelCallSecret=$secret"
  i=0
  for p in "${principals[@]}"; do
    name="${p%%:*}" role="${p#*:}"
    [ "$role" = "$p" ] && role=user
    key="$(random)"
    echo "Auth__ApiKeys__${i}__Name=$name"
    echo "Auth__ApiKeys__${i}__Key=$key"
    echo "Auth__ApiKeys__${i}__Role=$role"
    echo "API key of $name ($role): $key" >&2
    i=$((i + 1))
  done
} > "$folder/gateway.env"
echo "Level__CallSecret=$secret" > "$folder/level.env"
echo "wrote $folder/gateway.env and $folder/level.env" >&2
