#!/usr/bin/env bash
# Jaeger (all-in-one: OTLP receiver, in-memory store, query HTTP API), the trace backend the
# end-to-end trace test starts. Built once from the Go module proxy and cached by version under
# ~/.cache/loopgate/go (go-tools.sh); prints the binary's path. Cold build ~2.5-4 min, ~2.3 GB.
set -euo pipefail
. "$(dirname "$0")/go-tools.sh"
v=${JAEGER_VERSION:-v1.75.0}
go_tool_module jaeger github.com/jaegertracing/jaeger "$v" ./cmd/jaeger \
    "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$v"
