#!/usr/bin/env bash
# A local Keycloak (the OpenID provider the single sign-on tests sign in through), from Maven Central.
#   scripts/keycloak.sh fetch    resolve org.keycloak:keycloak-quarkus-dist once into the cache, unpack
#                                it and build it (Quarkus' augmentation, ~1 min, once per version)
#   scripts/keycloak.sh start    fetch if needed, start on 127.0.0.1 with the realm file imported,
#                                wait until it listens
#   scripts/keycloak.sh stop     stop the Keycloak this script started (in KEYCLOAK_HOME_DIR)
# The cached distribution is shared and never written after the build: each start runs from a home
# of its own (KEYCLOAK_HOME_DIR: its data/, its log and pid; the rest links to the cache), so several
# test sessions can run at once. The database is in memory: every start imports the realm afresh.
# Environment: KEYCLOAK_PORT (18080), KEYCLOAK_HOME_DIR (.run/keycloak),
#   KEYCLOAK_REALM_FILE (deploy/keycloak/loopgate-test-realm.json), LOOPGATE_CACHE (~/.cache/loopgate),
#   KEYCLOAK_HEAP (-Xms64m -Xmx512m).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's:.*<keycloak.version>\(.*\)</keycloak.version>.*:\1:p' "$here/deploy/keycloak/pom.xml")
cache=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}
dist="$cache/keycloak-$version"
port=${KEYCLOAK_PORT:-18080}
home=${KEYCLOAK_HOME_DIR:-$here/.run/keycloak}
realm_file=${KEYCLOAK_REALM_FILE:-$here/deploy/keycloak/loopgate-test-realm.json}
pidfile="$home/keycloak.pid"
logfile="$home/keycloak.log"
# Build options: fixed at `fetch`, so `start --optimized` never rebuilds (nor writes to the cache).
build_options=(--db=dev-mem)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

unpack() {  # unpack ZIP DIR: with unzip, else Python's zipfile (which drops the executable bits: kc.sh runs through bash)
  if command -v unzip >/dev/null; then unzip -q "$1" -d "$2"; else python3 -m zipfile -e "$1" "$2"; fi
}

fetch() {
  if [ -f "$dist/.complete" ]; then return 0; fi
  mkdir -p "$cache"
  exec 9>"$dist.lock"
  flock 9  # a second session fetching at the same time waits for the first
  if [ -f "$dist/.complete" ]; then return 0; fi
  local started=$SECONDS part="$dist.part"
  echo "keycloak: resolving org.keycloak:keycloak-quarkus-dist:$version:zip from Maven Central into $dist"
  rm -rf "$part" "$dist" && mkdir -p "$part"
  mvn -q -B -f "$here/deploy/keycloak/pom.xml" dependency:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" -DoutputDirectory="$part"
  unpack "$part/keycloak-quarkus-dist-$version.zip" "$part"
  mv "$part/keycloak-$version" "$dist" && rm -rf "$part"
  echo "keycloak: building (once per version; options ${build_options[*]})"
  JAVA_OPTS_KC_HEAP=${KEYCLOAK_HEAP:--Xms64m -Xmx512m} bash "$dist/bin/kc.sh" build "${build_options[@]}" \
      >"$dist/build.log" 2>&1 || { tail -n 30 "$dist/build.log" >&2; return 1; }
  touch "$dist/.complete"
  echo "keycloak: $version fetched and built in $((SECONDS - started)) s"
}

start() {
  if port_open "$port"; then echo "keycloak: port $port is taken" >&2; return 1; fi
  fetch
  rm -rf "$home" && mkdir -p "$home/bin" "$home/data/import"
  cp "$dist/bin/kc.sh" "$home/bin/kc.sh"  # kc.sh takes its home from where it lies
  for name in conf lib providers themes version.txt; do ln -s "$dist/$name" "$home/$name"; done
  cp "$realm_file" "$home/data/import/"
  local started=$SECONDS
  JAVA_OPTS_KC_HEAP=${KEYCLOAK_HEAP:--Xms64m -Xmx512m} nohup bash -c 'exec "$@"' _ bash "$home/bin/kc.sh" \
      start --optimized --http-enabled=true --http-host=127.0.0.1 --http-port="$port" --hostname-strict=false \
      --import-realm >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 600); do
    if port_open "$port" && grep -q "Listening on" "$logfile" 2>/dev/null; then
      echo "keycloak: $version up on http://127.0.0.1:$port in $((SECONDS - started)) s (pid $(cat "$pidfile"), home $home)"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "keycloak: exited during start; last lines of $logfile:" >&2
      tail -n 30 "$logfile" >&2; return 1
    fi
    sleep 0.5
  done
  echo "keycloak: not listening after 300 s; see $logfile" >&2; return 1
}

stop() {
  [ -f "$pidfile" ] || { echo "keycloak: not started by this script ($pidfile missing)"; return 0; }
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
  echo "keycloak: stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 fetch|start|stop" >&2; exit 2 ;;
esac
