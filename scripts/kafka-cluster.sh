#!/usr/bin/env bash
# A three-broker KRaft cluster on 127.0.0.1 from the same Maven-resolved jars as scripts/kafka.sh:
# three JVMs, each node broker and controller, one static controller quorum of the three, storage
# formatted with one cluster id; internal topics at replication factor 3 and min.insync.replicas 2.
#   scripts/kafka-cluster.sh start DIR       format (once) and start every node not running; wait for them
#   scripts/kafka-cluster.sh stop DIR        stop every node (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka-cluster.sh status DIR      exit 0 when every node answers; prints the bootstrap servers
#   scripts/kafka-cluster.sh kill DIR N      SIGKILL node N (1-3), as a crash; `start DIR` brings it back
#   scripts/kafka-cluster.sh bootstrap DIR   the bootstrap servers, host:port,host:port,host:port
# Everything (configs, data, logs, pids, the ports) lives in DIR. Ports: KAFKA_CLUSTER_PORTS and
# KAFKA_CLUSTER_CONTROLLER_PORTS (three each, comma-separated) on the first start, free ones
# otherwise; kept in DIR/cluster.env so a node comes back on its own ports.
# Environment: LOOPGATE_CACHE (~/.cache/loopgate), KAFKA_HEAP (-Xmx384m -Xms128m, per node).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/deploy/kafka/pom.xml")
cache=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}
libs="$cache/kafka-$version/libs"
nodes=(1 2 3)
heap=${KAFKA_HEAP:--Xmx384m -Xms128m}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_ports() {  # N free TCP ports on 127.0.0.1, comma-separated
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
[s.bind(("127.0.0.1",0)) for s in socks]
print(",".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

java_cmd() {
  # shellcheck disable=SC2086  # the heap options are words
  java $heap -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/deploy/kafka/log4j2.properties" -cp "$libs/*" "$@"
}

load_ports() {  # sets ports[] and controller_ports[] (1-based), choosing them on the first start
  local env="$dir/cluster.env"
  if [ ! -f "$env" ]; then
    mkdir -p "$dir"
    echo "KAFKA_CLUSTER_PORTS=${KAFKA_CLUSTER_PORTS:-$(free_ports 3)}" >"$env"
    echo "KAFKA_CLUSTER_CONTROLLER_PORTS=${KAFKA_CLUSTER_CONTROLLER_PORTS:-$(free_ports 3)}" >>"$env"
  fi
  local p c
  p=$(sed -n 's/^KAFKA_CLUSTER_PORTS=//p' "$env")
  c=$(sed -n 's/^KAFKA_CLUSTER_CONTROLLER_PORTS=//p' "$env")
  IFS=, read -r -a ports <<<"0,$p"
  IFS=, read -r -a controller_ports <<<"0,$c"
}

bootstrap() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("127.0.0.1:${ports[$n]}"); done
  (IFS=,; echo "${out[*]}")
}

node_config() {  # the server.properties of node $1
  local n=$1 voters="" m
  for m in "${nodes[@]}"; do voters+="${voters:+,}$m@127.0.0.1:${controller_ports[$m]}"; done
  cat <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$n]},CONTROLLER://127.0.0.1:${controller_ports[$n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$n]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/node-$n/logs
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
# small: three JVMs share two cores
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.threads=1
PROPS
}

running() { [ -f "$dir/node-$1/pid" ] && kill -0 "$(cat "$dir/node-$1/pid")" 2>/dev/null; }

start() {
  [ -f "$libs/.complete" ] || bash "$here/scripts/kafka.sh" fetch
  load_ports
  local n cluster_id started=()
  if [ -f "$dir/cluster-id" ]; then cluster_id=$(cat "$dir/cluster-id"); else
    cluster_id=$(java_cmd kafka.tools.StorageTool random-uuid)
    echo "$cluster_id" >"$dir/cluster-id"
  fi
  for n in "${nodes[@]}"; do
    running "$n" && continue
    if port_open "${ports[$n]}" || port_open "${controller_ports[$n]}"; then
      echo "kafka-cluster: node $n's port ${ports[$n]} or ${controller_ports[$n]} is taken by another process" >&2
      return 1
    fi
    mkdir -p "$dir/node-$n"
    node_config "$n" >"$dir/node-$n/server.properties"
    if [ ! -f "$dir/node-$n/logs/meta.properties" ]; then
      java_cmd kafka.tools.StorageTool format --ignore-formatted --cluster-id "$cluster_id" \
          --config "$dir/node-$n/server.properties" >/dev/null
    fi
    : >"$dir/node-$n/broker.log"
    # shellcheck disable=SC2086
    nohup bash -c 'exec "$@"' _ java $heap -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$here/deploy/kafka/log4j2.properties" \
        -cp "$libs/*" kafka.Kafka "$dir/node-$n/server.properties" >"$dir/node-$n/broker.log" 2>&1 &
    echo $! >"$dir/node-$n/pid"
    started+=("$n")
  done
  for _ in $(seq 1 360); do
    local waiting=0
    for n in "${started[@]}"; do
      if ! running "$n"; then
        echo "kafka-cluster: node $n exited during start; last lines of $dir/node-$n/broker.log:" >&2
        tail -n 30 "$dir/node-$n/broker.log" >&2; return 1
      fi
      port_open "${ports[$n]}" && grep -q "Kafka Server started" "$dir/node-$n/broker.log" || waiting=1
    done
    if [ "$waiting" = 0 ]; then
      echo "kafka-cluster: $version, nodes ${started[*]:-none} started; bootstrap $(bootstrap) (data $dir)"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka-cluster: not every node answered after 180 s; see $dir/node-*/broker.log" >&2; return 1
}

stop() {
  local n pid
  for n in "${nodes[@]}"; do
    running "$n" && kill -TERM "$(cat "$dir/node-$n/pid")"
  done
  for n in "${nodes[@]}"; do
    [ -f "$dir/node-$n/pid" ] || continue
    pid=$(cat "$dir/node-$n/pid")
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$dir/node-$n/pid"
  done
  echo "kafka-cluster: stopped ($dir)"
}

kill_node() {
  local n=$1
  running "$n" || { echo "kafka-cluster: node $n is not running" >&2; return 1; }
  kill -KILL "$(cat "$dir/node-$n/pid")"
  while running "$n"; do sleep 0.1; done
  rm -f "$dir/node-$n/pid"
  echo "kafka-cluster: node $n killed"
}

status() {
  load_ports
  local n ok=0
  for n in "${nodes[@]}"; do
    if running "$n" && port_open "${ports[$n]}"; then echo "node $n: up on 127.0.0.1:${ports[$n]}"
    else echo "node $n: down"; ok=1; fi
  done
  echo "bootstrap $(bootstrap)"
  return $ok
}

command=${1:-}
dir=${2:-}
if [ -z "$dir" ]; then
  echo "usage: $0 start|stop|status|bootstrap DIR | kill DIR N" >&2; exit 2
fi
mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  bootstrap) load_ports && bootstrap ;;
  kill) kill_node "${3:?usage: $0 kill DIR N}" ;;
  *) echo "usage: $0 start|stop|status|bootstrap DIR | kill DIR N" >&2; exit 2 ;;
esac
