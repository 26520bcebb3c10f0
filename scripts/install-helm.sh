#!/usr/bin/env bash
# Helm, for the chart's tests (`helm lint`, `helm template`): built once from the Go module proxy
# and cached by version. Prints the binary's path.
set -euo pipefail
. "$(dirname "$0")/go-tools.sh"
v=v4.3.2
go_tool_module helm helm.sh/helm/v4 "$v" ./cmd/helm "-X helm.sh/helm/v4/internal/version.version=$v"
