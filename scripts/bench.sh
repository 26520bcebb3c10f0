#!/usr/bin/env bash
# `make bench`: the benchmarks on a broker of their own (started here, stopped after), then the table.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$PWD/.run/kafka-bench}
started=0
if ! scripts/kafka.sh status; then
  scripts/kafka.sh start
  started=1
fi
trap '[ "$started" = 1 ] && scripts/kafka.sh stop' EXIT
.venv/bin/loopgate-tools bench "$@"
