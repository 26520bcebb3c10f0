#!/usr/bin/env bash
# The secret files docker-compose.yml mounts (compose `secrets:`), written once: random passwords,
# the two database URLs made from them, an empty file for the dispatcher's token.
#
#   scripts/compose-secrets.sh [DIR]      DIR: $SECRETS_DIR, else ./secrets (what compose reads)
#
# A file that already exists is kept as it is (run it again after adding a service: only what is
# missing is written). The directory is 0700 (root, or whoever runs compose), each file 0644: a
# compose secret is a bind mount of the file, read inside the container by its non-root user
# (uid 10001 for Loopgate, the postgres user for PostgreSQL), and the directory keeps other users
# on the host out. Passwords are 48 hex digits: URL-safe, so they go into a URL as they are.
#
#   postgres-password       the PostgreSQL superuser's (the postgres container only)
#   database-owner-url      loopgate_owner, who owns the schema: the `migrate` one-shot only
#   database-url            loopgate_app, rows only (no CREATE): the API only
#   dispatcher-api-token    empty; the dispatcher waits (not ready) until a token is written into it
#   grafana-admin-password  Grafana's `admin`
set -euo pipefail

dir=${1:-${SECRETS_DIR:-./secrets}}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
# put NAME VALUE: writes the file unless it exists; 0644 (see above).
put() {
  local file="$dir/$1"
  if [ -e "$file" ]; then echo "compose-secrets: $file exists, kept" >&2; return 0; fi
  printf '%s' "$2" >"$file"
  chmod 0644 "$file"
  echo "compose-secrets: wrote $file" >&2
}

put postgres-password "$(password)"
put database-owner-url "postgresql+asyncpg://loopgate_owner:$(password)@postgres:5432/loopgate"
put database-url "postgresql+asyncpg://loopgate_app:$(password)@postgres:5432/loopgate"
put dispatcher-api-token ""
put grafana-admin-password "$(password)"
