#!/usr/bin/env bash
# The `docker compose` CLI plugin, for the test that validates docker-compose.yml with
# `docker compose config`. Built once from the Go module proxy when the machine lacks it
# (there is no Docker engine here; only the client and this plugin are needed).
set -euo pipefail
. "$(dirname "$0")/lib/go-tool.sh"
if docker compose version >/dev/null 2>&1; then exit 0; fi
command -v docker >/dev/null || { echo "install-compose: no docker client on this machine" >&2; exit 1; }
v=v2.40.3
go_build_module install-compose github.com/docker/compose/v2 "$v" ./cmd "$HOME/.docker/cli-plugins/docker-compose" \
    "-s -w -X github.com/docker/compose/v2/internal.Version=$v"
docker compose version
