#!/bin/bash
# The health check docker-compose.yml runs (the apache/kafka image's script of the same name).
exec java -Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp '/opt/kafka/libs/*' \
    org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
