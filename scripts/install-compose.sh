#!/usr/bin/env bash
# The `docker compose` CLI plugin, for the test that validates docker-compose.yml with
# `docker compose config`. Built once from the Go module proxy when the machine lacks it
# (there is no Docker engine here; only the client and this plugin are needed).
set -euo pipefail
if docker compose version >/dev/null 2>&1; then exit 0; fi
command -v docker >/dev/null || { echo "install-compose: no docker client on this machine" >&2; exit 1; }
command -v go >/dev/null || { echo "install-compose: need Go to build the compose plugin" >&2; exit 1; }
v=v2.40.3
out=$HOME/.docker/cli-plugins/docker-compose
echo "install-compose: building docker compose $v from the Go module proxy (once)"
src=$(go mod download -json "github.com/docker/compose/v2@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
tmp=$(mktemp -d)
cp -r "$src"/. "$tmp"
chmod -R u+w "$tmp"
mkdir -p "$(dirname "$out")"
(cd "$tmp" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$v" -o "$out" ./cmd)
rm -rf "$tmp"
docker compose version
