#!/usr/bin/env bash
# `make demo`: the broker, the three services, a minute of simulated traffic, then the result.
# Leaves the stack running until Ctrl-C; `make down` (scripts/demo.sh down) stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/.run/demo"
bin="$root/.venv/bin"
DEMO_SECONDS=${DEMO_SECONDS:-60}
DEMO_RATE=${DEMO_RATE:-300}

export LOOPGATE_KAFKA_BOOTSTRAP=127.0.0.1:9092
export LOOPGATE_DATABASE_URL="sqlite+aiosqlite:///$run/loopgate.db"
export LOOPGATE_API_URL=http://127.0.0.1:8000
export LOOPGATE_CONSOLE_SECURE_COOKIE=false  # the console over plain http on this machine only
export LOOPGATE_DETECTOR_DATA_DIR="$run/detector"
export PYTHONUNBUFFERED=1

down() {
  for name in dispatcher detector api; do
    pidfile="$run/$name.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
      echo "demo: stopped $name"
    fi
    rm -f "$pidfile"
  done
  scripts/kafka.sh stop
}

if [ "${1:-}" = "down" ]; then down; exit 0; fi

start_bg() {  # name, command...
  local name=$1; shift
  nohup "$@" >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

wait_http() {  # url, what
  for _ in $(seq 1 120); do
    if "$bin/python" -c "import httpx,sys; sys.exit(httpx.get('$1', timeout=1).status_code != 200)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "demo: $2 did not come up; see $run" >&2; return 1
}

# A clean slate for the services (the broker keeps its data in .run/kafka).
down >/dev/null 2>&1 || true
rm -rf "$run" && mkdir -p "$run" && chmod 700 "$run"

echo "== 1. Kafka"
scripts/kafka.sh start
"$bin/loopgate" topics create

echo "== 2. Resolution API (SQLite at $run/loopgate.db)"
"$bin/loopgate" api migrate
admin=$("$bin/loopgate" api tokens create --role admin --name demo-admin | tail -n 1)
operator=$("$bin/loopgate" api tokens create --role operator --name demo-operator | tail -n 1)
service=$("$bin/loopgate" api tokens create --role service --name dispatcher | tail -n 1)
printf 'ADMIN_TOKEN=%s\nOPERATOR_TOKEN=%s\nSERVICE_TOKEN=%s\n' "$admin" "$operator" "$service" >"$run/tokens.env"
chmod 600 "$run/tokens.env"
start_bg api "$bin/loopgate" api serve
wait_http "$LOOPGATE_API_URL/readyz" "the API"

echo "== 3. Detector and dispatcher"
start_bg detector "$bin/loopgate" detector --log-level warning
LOOPGATE_API_TOKEN=$service start_bg dispatcher "$bin/loopgate" dispatcher --log-level warning
wait_http "http://127.0.0.1:9101/metrics" "the detector"
wait_http "http://127.0.0.1:9102/metrics" "the dispatcher"

echo "== 4. Simulated traffic: ${DEMO_SECONDS}s at ${DEMO_RATE} events/s"
"$bin/loopgate-tools" simulate --duration "$DEMO_SECONDS" --rate "$DEMO_RATE" --ground-truth "$run/ground-truth.jsonl"

echo "== 5. What happened"
"$bin/loopgate-tools" demo-report --operator-token "$operator" --ground-truth "$run/ground-truth.jsonl"

cat <<EOT

The stack is running:
  API docs        $LOOPGATE_API_URL/docs   (operator token in $run/tokens.env)
  API metrics     $LOOPGATE_API_URL/metrics
  detector        http://127.0.0.1:9101/metrics
  dispatcher      http://127.0.0.1:9102/metrics
  logs            $run/*.log
  operator CLI    LOOPGATE_OPS_URL=$LOOPGATE_API_URL LOOPGATE_OPS_TOKEN=<the token below> $bin/loopgate ops list
Ctrl-C here, or \`make down\` elsewhere, stops everything.

The console:      $LOOPGATE_API_URL/console
Operator token:   $operator
EOT
trap 'echo; down; exit 0' INT TERM
while kill -0 "$(cat "$run/api.pid")" 2>/dev/null; do sleep 1; done
