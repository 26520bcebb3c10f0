#!/bin/bash
# Loopgate's two PostgreSQL roles, made once when the data directory is new (the postgres image
# runs /docker-entrypoint-initdb.d/*.sh as its superuser, $POSTGRES_USER, on $POSTGRES_DB; so does
# deploy/local/postgres's stand-in):
#   loopgate_owner  owns the database and its `public` schema: `loopgate api migrate` runs as it
#                   (the `migrate` one-shot) and grants loopgate_app its rows (--grant-to).
#   loopgate_app    the API's role: CONNECT, then only what --grant-to gives (read and write rows);
#                   no CREATE in the schema, no temporary tables, no superuser, no CREATEDB/ROLE.
# Each password is taken from its role's database URL (the compose secrets database-owner-url and
# database-url, mounted into this container too), so it is written in one place only. A URL
# that is not `postgresql+asyncpg://ROLE:PASSWORD@HOST:PORT/$POSTGRES_DB`, with the role's own name
# and a URL-safe password (letters, digits, . _ ~ -), stops the container's first start, saying so.
set -euo pipefail

secrets=${LOOPGATE_ROLES_SECRETS:-/run/secrets}
db=${POSTGRES_DB:?}

# password ROLE FILE: the password in FILE's URL, which must name ROLE and this database.
password() {
  local role=$1 file=$2 url
  [ -r "$file" ] || { echo "loopgate roles: cannot read $file (the compose secret for $role)" >&2; exit 1; }
  url=$(<"$file")
  local re='^postgresql(\+asyncpg)?://([a-z_][a-z0-9_]*):([A-Za-z0-9._~-]+)@[^/@]+/([A-Za-z0-9_]+)$'
  if ! [[ $url =~ $re ]]; then
    echo "loopgate roles: $file is not postgresql+asyncpg://$role:PASSWORD@HOST:PORT/$db" \
      "(a URL-safe password: letters, digits, . _ ~ -)" >&2
    exit 1
  fi
  if [ "${BASH_REMATCH[2]}" != "$role" ] || [ "${BASH_REMATCH[4]}" != "$db" ]; then
    echo "loopgate roles: $file names role ${BASH_REMATCH[2]} and database ${BASH_REMATCH[4]};" \
      "docker-compose.yml expects $role and $db" >&2
    exit 1
  fi
  printf '%s' "${BASH_REMATCH[3]}"
}

owner_password=$(password loopgate_owner "$secrets/database-owner-url")
app_password=$(password loopgate_app "$secrets/database-url")

# The passwords go in through psql variables on stdin (validated above: nothing to escape), never
# on a command line.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$db" --no-psqlrc --quiet <<SQL
\set owner_password '$owner_password'
\set app_password '$app_password'
\set db '$db'
CREATE ROLE loopgate_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE loopgate_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO loopgate_owner;
-- No CONNECT or TEMPORARY for everyone: the app role gets CONNECT alone.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO loopgate_app;
-- PostgreSQL 15 and later: public belongs to the database's owner and PUBLIC may not create in it;
-- said explicitly for older servers.
ALTER SCHEMA public OWNER TO loopgate_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
echo "loopgate roles: loopgate_owner owns database $db; loopgate_app may connect (rows: loopgate api migrate --grant-to)"
