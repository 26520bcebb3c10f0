#!/usr/bin/env bash
# `make demo`: the broker, the three services, a minute of simulated traffic, then the result.
# Leaves the stack running until Ctrl-C; `make down` (scripts/demo.sh down) stops it all.
#   DEMO_ONCE=1      stop everything by itself once the result is shown (no Ctrl-C needed)
#   DEMO_SECONDS     how long the simulated traffic runs (60)      DEMO_RATE   events a second (300)
#   DEMO_STATE_DIR   where the broker's data, the database, the logs and the tokens go (.run)
#   ports: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), DEMO_API_PORT (8000),
#          DEMO_DETECTOR_PORT (9101), DEMO_DISPATCHER_PORT (9102)
# A failure at any step stops what the demo started and says where the logs are.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=$(mkdir -p "${DEMO_STATE_DIR:-$root/.run}" && cd "${DEMO_STATE_DIR:-$root/.run}" && pwd)
run="$state/demo"
bin="$root/.venv/bin"
DEMO_SECONDS=${DEMO_SECONDS:-60}
DEMO_RATE=${DEMO_RATE:-300}
DEMO_ONCE=${DEMO_ONCE:-0}
api_port=${DEMO_API_PORT:-8000}

export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_DATA_DIR="$state/kafka"
export LOOPGATE_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
export LOOPGATE_DATABASE_URL="sqlite+aiosqlite:///$run/loopgate.db"
export LOOPGATE_API_PORT=$api_port
export LOOPGATE_API_URL="http://127.0.0.1:$api_port"
export LOOPGATE_PUBLIC_URL="http://127.0.0.1:$api_port"
export LOOPGATE_DETECTOR_METRICS_PORT=${DEMO_DETECTOR_PORT:-9101}
export LOOPGATE_DISPATCHER_METRICS_PORT=${DEMO_DISPATCHER_PORT:-9102}
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
  echo "demo: $2 did not come up; see $run/*.log" >&2; return 1
}

failed() {
  echo "demo: failed at the step above; stopping what it started (logs stay in $run)" >&2
  down >/dev/null 2>&1 || true
}

# A clean slate for the services (the broker keeps its data in $state/kafka).
down >/dev/null 2>&1 || true
rm -rf "$run" && mkdir -p "$run" && chmod 700 "$run"
trap failed ERR

echo "== 1. Kafka"
scripts/kafka.sh start
# A fresh broker has no upstream topics: on this local stack Loopgate creates them too.
"$bin/loopgate" topics create --with-upstream

echo "== 2. Resolution API (SQLite at $run/loopgate.db)"
"$bin/loopgate" api migrate
admin=$("$bin/loopgate" api tokens create --role admin --name demo-admin 2>>"$run/tokens.log")
operator=$("$bin/loopgate" api tokens create --role operator --name demo-operator 2>>"$run/tokens.log")
service=$("$bin/loopgate" api tokens create --role service --name dispatcher 2>>"$run/tokens.log")
printf 'ADMIN_TOKEN=%s\nOPERATOR_TOKEN=%s\nSERVICE_TOKEN=%s\n' "$admin" "$operator" "$service" >"$run/tokens.env"
chmod 600 "$run/tokens.env"
start_bg api "$bin/loopgate" api serve
wait_http "$LOOPGATE_API_URL/readyz" "the API"

echo "== 3. Detector and dispatcher"
start_bg detector "$bin/loopgate" detector --log-level warning
LOOPGATE_API_TOKEN=$service start_bg dispatcher "$bin/loopgate" dispatcher --log-level warning
wait_http "http://127.0.0.1:$LOOPGATE_DETECTOR_METRICS_PORT/metrics" "the detector"
wait_http "http://127.0.0.1:$LOOPGATE_DISPATCHER_METRICS_PORT/metrics" "the dispatcher"

echo "== 4. Simulated traffic: ${DEMO_SECONDS}s at ${DEMO_RATE} events/s"
"$bin/loopgate-tools" simulate --duration "$DEMO_SECONDS" --rate "$DEMO_RATE" --ground-truth "$run/ground-truth.jsonl"

echo "== 5. What happened"
"$bin/loopgate-tools" demo-report --operator-token "$operator" --ground-truth "$run/ground-truth.jsonl"
trap - ERR

cat <<EOT

The stack is running:
  API docs        $LOOPGATE_API_URL/docs   (operator token in $run/tokens.env)
  API metrics     $LOOPGATE_API_URL/metrics
  detector        http://127.0.0.1:$LOOPGATE_DETECTOR_METRICS_PORT/metrics
  dispatcher      http://127.0.0.1:$LOOPGATE_DISPATCHER_METRICS_PORT/metrics
  logs            $run/*.log
  operator CLI    LOOPGATE_OPS_URL=$LOOPGATE_API_URL LOOPGATE_OPS_TOKEN=<the token below> $bin/loopgate ops list
Ctrl-C here, or \`make down\` elsewhere, stops everything.

The console:      $LOOPGATE_API_URL/console  (sign in with the operator token)
Operator token:   $operator
EOT
if [ "$DEMO_ONCE" = "1" ]; then
  echo; echo "demo: DEMO_ONCE=1, stopping everything"; down; exit 0
fi
trap 'echo; down; exit 0' INT TERM
while kill -0 "$(cat "$run/api.pid")" 2>/dev/null; do sleep 1; done
echo "demo: the API stopped (see $run/api.log); stopping the rest" >&2
down
exit 1
