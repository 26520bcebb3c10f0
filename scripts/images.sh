#!/usr/bin/env bash
# Container images for the compose stack, built from what this machine reaches (no registry):
#   scripts/images.sh base       the Debian base (debootstrap minbase + python3), once per BASE_TAG
#   scripts/images.sh local      base + the local Kafka, PostgreSQL, Prometheus, Alertmanager images
#   scripts/images.sh loopgate   the Loopgate image (the Dockerfile) on the local base; prints its name
#   scripts/images.sh all        all of the above; prints the Loopgate image's name
#   scripts/images.sh service    start podman's Docker-compatible API socket (for `docker compose`)
# Each image is built once and reused while it exists in podman's store AND its stamp under
# $LOOPGATE_CACHE/images says it was built from the same inputs (version key). The Loopgate image's
# tag is its inputs' content key (localhost/loopgate:src-KEY, the name printed on stdout), so two
# checkouts on one machine (podman's store is shared) never rebuild or retag each other's image;
# deploy/compose.local.yml takes that name from LOOPGATE_IMAGE. Progress goes to stderr. Podman runs with
# deploy/podman/containers.conf (CONTAINERS_CONF) unless the caller set one.
# Environment: LOOPGATE_CACHE (~/.cache/loopgate), PODMAN_SOCKET (/run/podman/podman.sock).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${LOOPGATE_CACHE:-$HOME/.cache/loopgate}
stamps="$cache/images"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/deploy/podman/containers.conf}
socket=${PODMAN_SOCKET:-/run/podman/podman.sock}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/deploy/kafka/pom.xml")

# Bump BASE_REV when the package list below changes.
BASE_REV=1
BASE_PACKAGES=python3,python3-venv,ca-certificates
BASE_TAG=bookworm-$BASE_REV
BASE_IMAGE=localhost/loopgate-base:$BASE_TAG

need() { command -v "$1" >/dev/null || { echo "images: need $1 (apt-get install $2)" >&2; exit 1; }; }
need podman podman
have_image() { podman image exists "$1"; }
# fresh NAME KEY: the image exists and its stamp carries KEY.
fresh() { have_image "$1" && [ -f "$stamps/${1//[\/:]/_}" ] && [ "$(cat "$stamps/${1//[\/:]/_}")" = "$2" ]; }
stamp() { mkdir -p "$stamps"; printf '%s' "$2" >"$stamps/${1//[\/:]/_}"; }
# key FILE...: the content hash of the inputs.
key() { cat "$@" | sha256sum | cut -c1-16; }

mirror() {  # the machine's own Debian mirror: deb822 sources, else the one-line form
  local m
  m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

base() {
  local k="$BASE_TAG:$BASE_PACKAGES"
  if fresh "$BASE_IMAGE" "$k"; then return 0; fi
  need debootstrap debootstrap
  echo "images: building $BASE_IMAGE with debootstrap (once per machine, about a minute)" >&2
  local root; root=$(mktemp -d)
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" "$(mirror)" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  stamp "$BASE_IMAGE" "$k"
}

# build_local NAME: deploy/local/NAME/Containerfile on the base, keyed by its directory's content.
build_local() {
  local name=$1 dir="$here/deploy/local/$1" image="localhost/loopgate-$1:local"
  local k; k="$BASE_TAG:$kafka_version:$(key $(find "$dir" -type f | sort))"
  if fresh "$image" "$k"; then return 0; fi
  local ctx; ctx=$(mktemp -d); cp -r "$dir"/. "$ctx"
  if [ "$name" = kafka ]; then
    "$here/scripts/kafka.sh" fetch >&2
    cp -r "$cache/kafka-$kafka_version/libs" "$ctx/libs"; rm -f "$ctx/libs/.complete"
    cp "$here/deploy/kafka/log4j2.properties" "$ctx/"
  fi
  echo "images: building $image" >&2
  podman build -q --network host --build-arg BASE="$BASE_IMAGE" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
  stamp "$image" "$k"
}

local_images() { base; for n in kafka postgres prometheus alertmanager; do build_local "$n"; done; }

# The Loopgate image from the repository's Dockerfile on the local base; pip inside the build
# reaches PyPI through the host network with the host's CA bundle (a build secret, not a layer).
loopgate() {
  base
  local k; k="$BASE_TAG:$(cd "$here" && key Dockerfile .dockerignore requirements.lock pyproject.toml \
      $(find schemas services -type f -not -path '*/__pycache__/*' | sort))"
  local image=localhost/loopgate:src-${k##*:}
  if fresh "$image" "$k"; then echo "$image"; return 0; fi
  echo "images: building $image" >&2
  podman build -q --network host --build-arg BASE="$BASE_IMAGE" --build-arg PYTHON=python3 \
      --secret id=ca,src="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" \
      -t "$image" "$here" >/dev/null
  stamp "$image" "$k"
  prune_loopgate
  echo "$image"
}

# Each source change makes a new content-keyed image: keep the newest three (other checkouts may be
# using theirs); one a container still uses is refused by podman and stays.
prune_loopgate() {
  local old
  for old in $(podman images --filter 'reference=localhost/loopgate:src-*' --sort created \
      --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/loopgate:src-' | tail -n +4); do
    podman rmi "$old" >/dev/null 2>&1 && echo "images: removed $old (older than the newest three)" >&2 || true
  done
}

service() {  # podman's Docker-compatible API, for `DOCKER_HOST=unix://$socket docker compose`
  if [ -S "$socket" ] && curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$(dirname "$socket")"
  nohup podman system service --time=0 "unix://$socket" >"$cache/podman-service.log" 2>&1 &
  for _ in $(seq 1 50); do
    curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "images: podman system service did not answer on $socket; see $cache/podman-service.log" >&2
  exit 1
}

case "${1:-}" in
  base) base ;;
  local) local_images ;;
  loopgate) loopgate ;;
  all) local_images; loopgate ;;
  service) mkdir -p "$cache"; service ;;
  *) echo "usage: $0 base|local|loopgate|all|service" >&2; exit 2 ;;
esac
