#!/usr/bin/env bash
# tools/k8scheck (strict decoding of rendered manifests against the Kubernetes API types), built once
# per version of its sources from the modules pinned in its go.sum. Prints the binary's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/go-tools.sh"
go_tool_local k8scheck "$root/tools/k8scheck"
