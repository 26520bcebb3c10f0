#!/bin/bash
# KAFKA_FOO_BAR=x becomes foo.bar=x (as in the apache/kafka image); storage is formatted once
# with CLUSTER_ID, then the broker runs in the foreground.
set -euo pipefail
conf=/tmp/server.properties
: >"$conf"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS) continue ;;
    KAFKA_*) key=${name#KAFKA_}; key=${key,,}; echo "${key//_/.}=$value" >>"$conf" ;;
  esac
done < <(env)
java=(java ${KAFKA_HEAP_OPTS:--Xmx384m -Xms128m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
      -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
logdir=$(sed -n 's/^log.dirs=//p' "$conf")
if [ ! -f "${logdir:-/var/lib/kafka/data}/meta.properties" ]; then
  # A static quorum (controller.quorum.voters) is formatted as it is; a dynamic one as --standalone.
  standalone=(--standalone); grep -q '^controller.quorum.voters=' "$conf" && standalone=()
  "${java[@]}" kafka.tools.StorageTool format "${standalone[@]}" --ignore-formatted \
      --cluster-id "${CLUSTER_ID:?set CLUSTER_ID}" --config "$conf" >/dev/null
fi
exec "${java[@]}" kafka.Kafka "$conf"
