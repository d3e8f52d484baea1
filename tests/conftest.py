"""Shared fixtures: the real embedded broker and PostgreSQL, once per test session.

``KOPPELHUB_KAFKA_BOOTSTRAP`` and ``KOPPELHUB_DATABASE_URL`` point the suite at an existing
Kafka and PostgreSQL instead; with ``KOPPELHUB_TEST_CONTAINERS=1`` on a machine whose Docker
daemon answers, the session starts Apache Kafka and PostgreSQL 16 with testcontainers. Each
test gets its own database (cloned from a migrated template) and its own topics and consumer
group, so tests cannot see each other's events.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from hub.adapters.postgres.engine import libpq_url, migrate
from hub.embedded import Infrastructure, provision
from hub.settings import DeliverySettings, KafkaSettings, Settings
from tests.support.signalen_fake import SignalenFake
from tests.support.sink import WebhookSink

TEMPLATE_DB = "koppelhub_template"
ADMIN_TOKEN = "test-admin-token"


def docker_answers() -> bool:
    """True when a Docker daemon answers on its socket (never on this project's CI)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            s.connect("/var/run/docker.sock")
    except OSError:
        return False
    return True


@contextmanager
def containers() -> Iterator[tuple[str, str]]:
    """Apache Kafka and PostgreSQL 16 in containers (``pip install -e .[docker]``)."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:16", driver=None) as pg:
        yield kafka.get_bootstrap_server(), pg.get_connection_url()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    """Once per session, so once per pytest-xdist worker: each worker has its own broker and
    PostgreSQL under its own temporary folder (or its own subfolder of
    ``KOPPELHUB_TEST_DATA_DIR``), and nothing is shared between workers.

    The folder is not under pytest's temporary root: each pytest session that starts sets that
    root to mode 0700, which locks the embedded PostgreSQL (it runs as its own user) out of the
    data dir of a session still running. A second pytest run beside ``make test`` stopped its
    PostgreSQL so ("could not open file …/global/pg_control: Permission denied")."""
    given = os.environ.get("KOPPELHUB_TEST_DATA_DIR")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    with ExitStack() as stack:
        if given:
            data_dir = Path(given) / worker
        else:
            data_dir = Path(tempfile.mkdtemp(prefix=f"koppelhub-test-{worker}-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)  # after the services stop
        settings = Settings(data_dir=data_dir)
        if os.environ.get("KOPPELHUB_TEST_CONTAINERS") == "1" and docker_answers():
            bootstrap, url = stack.enter_context(containers())
            settings = Settings(data_dir=data_dir, database_url=url, kafka=KafkaSettings(bootstrap=bootstrap))
        yield from _provisioned(settings)


def _provisioned(settings: Settings) -> Iterator[Infrastructure]:
    infrastructure = provision(settings)
    with psycopg.connect(libpq_url(infrastructure.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    migrate(database_url_for(infrastructure.database_url, TEMPLATE_DB))
    yield infrastructure
    infrastructure.close()


def database_url_for(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def database_url(infra: Infrastructure) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield database_url_for(infra.database_url, name)
    with psycopg.connect(libpq_url(infra.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(tmp_path: Path, infra: Infrastructure, database_url: str) -> Settings:
    """Settings for one test: its own topics, group and database; fast retries; loopback sinks.

    One projector member and a 2 s group session: a hub's drain waits until its members own
    their partitions, and each (re)join costs about a session timeout, which was most of every
    e2e test's teardown (4.2 s with three members and 6 s). Several members are tested where
    they matter (test_projector_members, crash recovery), with the product's defaults."""
    tag = uuid.uuid4().hex[:10]
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        http_port=0,
        projector_members=1,
        admin_token=ADMIN_TOKEN,
        kafka=KafkaSettings(
            bootstrap=infra.kafka_bootstrap,
            topic=f"test.{tag}.events",
            dlq_topic=f"test.{tag}.events.dlq",
            consumer_group=f"test-{tag}",
            partitions=3,
            session_timeout_ms=2000,
            heartbeat_interval_ms=200,
            # Several tests write records around the hub (poison records, a raw producer): no
            # wake-up announces those, an idle member finds them at its look.
            idle_poll_ms=5_000,
        ),
        delivery=DeliverySettings(
            retry_schedule=[0.2, 0.4, 0.8],
            allow_networks=["127.0.0.0/8"],
            timeout_seconds=5,
            poll_seconds=0.5,
            slow_down_seconds=0.3,
        ),
    )


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def signalen() -> AsyncIterator[SignalenFake]:
    """A Signalen fake (a real HTTP server on loopback) with its default meldingen."""
    fake = await SignalenFake().start()
    yield fake
    await fake.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The two longest tests (the OpenAPI fuzz run, the power-cut suite) first: with parallel
    workers they then run beside the rest instead of after it."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith(("tests/fuzz/", "tests/faults/")) else 1)
