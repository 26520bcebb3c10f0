#!/usr/bin/env bash
# A local Apache Kafka broker from Maven Central jars: single-node KRaft on 127.0.0.1.
#   scripts/kafka.sh fetch    resolve the broker's jars once into the cache
#   scripts/kafka.sh start    fetch if needed, format storage, start, wait until it answers
#   scripts/kafka.sh stop     stop the broker this script started
#   scripts/kafka.sh status   exit 0 when a broker answers on the port
#   scripts/kafka.sh certs DIR   a throwaway CA (ca.pem), a broker certificate for 127.0.0.1/localhost
#                             (broker.p12), a client certificate (client.pem, client.key) and a CA
#                             nobody trusts (other-ca.pem), with openssl
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA_DIR (.run/kafka),
#              LOOPGATE_CACHE (~/.cache/loopgate), KAFKA_HEAP (-Xmx512m).
#   KAFKA_SASL_SSL_PORT: also listen with SASL_SSL on this port (SCRAM-SHA-256 and -512; certificates
#     from `certs` in $KAFKA_DATA_DIR/tls; the user KAFKA_SCRAM_USER (loopgate) with the password
#     KAFKA_SCRAM_PASSWORD is created when the storage is formatted, with Kafka's own StorageTool).
#     KAFKA_PORT stays a PLAINTEXT listener for the broker itself.
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

certs() {
  local dir=$1 pass=${2:-loopgate-test} san="subjectAltName=IP:127.0.0.1,DNS:localhost"
  mkdir -p "$dir" && cd "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Loopgate test CA" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 \
      -subj "/CN=An untrusted CA" 2>/dev/null
  for name in broker client; do
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" -days 2 \
        -extfile <(echo "$san") 2>/dev/null
  done
  openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -out broker.p12 -passout "pass:$pass"
  cd - >/dev/null
}

secure_listener() {  # appended to server.properties when KAFKA_SASL_SSL_PORT is set
  local tls=$1 pass=loopgate-test
  cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$pass
listener.name.sasl_ssl.ssl.key.password=$pass
PROPS
}

start() {
  if port_open "$port"; then echo "kafka: already answering on 127.0.0.1:$port"; return 0; fi
  fetch
  mkdir -p "$data"
  sed -e "s:@DATA_DIR@:$data:" -e "s:@PORT@:$port:" -e "s:@CONTROLLER_PORT@:$controller_port:" \
      "$here/deploy/kafka/server.properties" > "$data/server.properties"
  local scram=()
  if [ -n "${KAFKA_SASL_SSL_PORT:-}" ]; then
    [ -f "$data/tls/broker.p12" ] || certs "$data/tls"
    secure_listener "$data/tls" >> "$data/server.properties"
    local user=${KAFKA_SCRAM_USER:-loopgate} password=${KAFKA_SCRAM_PASSWORD:?set KAFKA_SCRAM_PASSWORD}
    scram=(--add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
           --add-scram "SCRAM-SHA-256=[name=$user,password=$password]")
  fi
  if [ ! -f "$data/logs/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format --standalone --ignore-formatted \
        --cluster-id "$(java_cmd kafka.tools.StorageTool random-uuid)" \
        --config "$data/server.properties" "${scram[@]}" >/dev/null
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
  certs) certs "${2:?usage: $0 certs DIR}" ;;
  *) echo "usage: $0 fetch|start|stop|status|certs DIR" >&2; exit 2 ;;
esac
