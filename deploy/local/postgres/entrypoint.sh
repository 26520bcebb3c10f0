#!/bin/bash
# The postgres image's contract: POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD or
# POSTGRES_PASSWORD_FILE; /docker-entrypoint-initdb.d/*.sh and *.sql run once, on an empty PGDATA.
set -euo pipefail
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U "$user" --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start >/dev/null
  [ "$db" = postgres ] || psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\"" >/dev/null
  export PGHOST=/var/run/postgresql PGUSER=$user PGDATABASE=$db POSTGRES_USER=$user POSTGRES_DB=$db
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "postgres: running $f"; bash "$f" ;;
      *.sql) echo "postgres: running $f"; psql -v ON_ERROR_STOP=1 -f "$f" ;;
    esac
  done
  unset PGHOST PGUSER PGDATABASE
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql
