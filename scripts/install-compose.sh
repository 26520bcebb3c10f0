#!/usr/bin/env bash
# The `docker compose` CLI plugin, for the test that validates docker-compose.yml with
# `docker compose config`. Built once from the Go module proxy when the machine lacks it
# (there is no Docker engine here; only the client and this plugin are needed).
set -euo pipefail
if docker compose version >/dev/null 2>&1; then exit 0; fi
command -v docker >/dev/null || { echo "install-compose: no docker client on this machine" >&2; exit 1; }
. "$(dirname "$0")/go-tools.sh"
v=v2.40.3
built=$(go_tool_module docker-compose github.com/docker/compose/v2 "$v" ./cmd "-X github.com/docker/compose/v2/internal.Version=$v")
out=$HOME/.docker/cli-plugins/docker-compose
mkdir -p "$(dirname "$out")"
cp "$built" "$out"
docker compose version
