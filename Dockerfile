# One image for every Loopgate process; docker-compose.yml picks the command
# (`topics create`, `api migrate`, `api serve`, `detector`, `dispatcher`).
#
#   docker build -t loopgate:local .
#   docker run --rm loopgate:local --help
#
# BASE is any image with Python 3.11 and its venv module; PYTHON names its interpreter. The
# default is the registry's python:3.11-slim. Without a registry (the tests), scripts/images.sh
# builds the same Dockerfile on a Debian bookworm base made with debootstrap (python3 is 3.11):
#   --build-arg BASE=localhost/loopgate-base:bookworm-1 --build-arg PYTHON=python3
# A build behind a TLS-intercepting proxy passes its CA bundle as a build secret (never a layer):
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE=python:3.11-slim
ARG PYTHON=python

# --- build: install the project and its dependencies into a self-contained venv ---
FROM ${BASE} AS build
ARG PYTHON

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN ${PYTHON} -m venv /opt/venv
WORKDIR /src
# The runtime lock first (its own layer, rebuilt only when the lock changes): every package pinned
# with its hashes, pip and setuptools included, nothing resolved or downloaded unverified.
COPY requirements.lock ./
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/venv/bin/pip install --require-hashes -r requirements.lock
# Only what pyproject.toml packages: tests, deploy files and local state stay out (.dockerignore too).
COPY pyproject.toml ./
COPY schemas ./schemas
COPY services ./services
# A regular (not editable) install, so the runtime stage needs the venv alone, not /src; its
# dependencies are the lock's (--no-deps), and it is built with the lock's setuptools.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . && /opt/venv/bin/pip check

# --- runtime: the venv, a non-root user, nothing else ---
FROM ${BASE}

# LOOPGATE_DETECTOR_DATA_DIR: the detector's faust data directory; docker-compose.yml mounts a volume there.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    LOOPGATE_DETECTOR_DATA_DIR=/var/lib/loopgate/detector

# A fixed uid, so volume ownership stays the same across rebuilds. The state directory exists in
# the image, owned by that user, so a named volume mounted on it starts out writable.
RUN groupadd --system --gid 10001 loopgate \
    && useradd --system --uid 10001 --gid loopgate --home-dir /app --create-home --shell /usr/sbin/nologin loopgate \
    && install -d -o loopgate -g loopgate /var/lib/loopgate/detector

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER loopgate

# api serve listens on LOOPGATE_API_PORT; the detector and dispatcher serve /metrics on theirs.
EXPOSE 8000 9101 9102

ENTRYPOINT ["loopgate"]
CMD ["--help"]
