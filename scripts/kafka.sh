#!/usr/bin/env bash
# A local Apache Kafka broker from Maven Central jars: single-node KRaft on 127.0.0.1.
#   scripts/kafka.sh fetch    resolve the broker's jars once into the cache
#   scripts/kafka.sh start    fetch if needed, format storage, start, wait until it answers
#   scripts/kafka.sh stop     stop the broker this script started
#   scripts/kafka.sh status   exit 0 when a broker answers on the port
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA_DIR (.run/kafka),
#              LOOPGATE_CACHE (~/.cache/loopgate), KAFKA_HEAP (-Xmx512m).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/deploy/kafka/pom.xml")
cache=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}
libs="$cache/kafka-$version/libs"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
data=${KAFKA_DATA_DIR:-$here/.run/kafka}
pidfile="$data/broker.pid"
logfile="$data/broker.log"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  echo "kafka: resolving org.apache.kafka:kafka_2.13:$version from Maven Central into $libs"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

java_cmd() {
  java ${KAFKA_HEAP:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/deploy/kafka/log4j2.properties" \
       -cp "$libs/*" "$@"
}

start() {
  if port_open "$port"; then echo "kafka: already answering on 127.0.0.1:$port"; return 0; fi
  fetch
  mkdir -p "$data"
  sed -e "s:@DATA_DIR@:$data:" -e "s:@PORT@:$port:" -e "s:@CONTROLLER_PORT@:$controller_port:" \
      "$here/deploy/kafka/server.properties" > "$data/server.properties"
  if [ ! -f "$data/logs/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format --standalone --ignore-formatted \
        --cluster-id "$(java_cmd kafka.tools.StorageTool random-uuid)" \
        --config "$data/server.properties" >/dev/null
  fi
  nohup bash -c 'exec "$@"' _ java ${KAFKA_HEAP:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$here/deploy/kafka/log4j2.properties" \
      -cp "$libs/*" kafka.Kafka "$data/server.properties" >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if port_open "$port" && grep -q "Kafka Server started" "$logfile" 2>/dev/null; then
      echo "kafka: $version up on 127.0.0.1:$port (pid $(cat "$pidfile"), data $data)"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "kafka: broker exited during start; last lines of $logfile:" >&2
      tail -n 30 "$logfile" >&2; return 1
    fi
    sleep 0.5
  done
  echo "kafka: not answering after 60 s; see $logfile" >&2; return 1
}

stop() {
  [ -f "$pidfile" ] || { echo "kafka: not started by this script ($pidfile missing)"; return 0; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  echo "kafka: stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) port_open "$port" ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
