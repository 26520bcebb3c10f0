#!/usr/bin/env bash
# Jaeger (all-in-one: OTLP receiver, in-memory store, query HTTP API), the trace backend the
# end-to-end trace test starts. Built once from the Go module proxy and cached by version under
# ~/.cache/loopgate; prints the binary's path. Cold build ~3 min 40 s and ~2.3 GB of memory.
set -euo pipefail
. "$(dirname "$0")/lib/go-tool.sh"
v=${JAEGER_VERSION:-v1.75.0}
out=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}/jaeger-$v/jaeger
if [ ! -x "$out" ]; then
    go_build_module install-jaeger github.com/jaegertracing/jaeger "$v" ./cmd/jaeger "$out" \
        "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$v"
fi
echo "$out"
