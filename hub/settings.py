"""Koppelhub settings: one pydantic-settings object, built once in the entrypoint.

Every setting is an environment variable with the ``KOPPELHUB_`` prefix. Groups are
separate settings classes with their own prefix (``KOPPELHUB_KAFKA_…``,
``KOPPELHUB_DELIVERY_…``) so the variable names stay flat, as INTERFACES.md names them.
The README lists every variable; ``tests/unit/test_settings.py`` keeps the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from subscriptions.retry import DEFAULT_JITTER, DEFAULT_RETRY_SCHEDULE

_ONE_MIB = 1_048_576


def _split_csv(value: object) -> object:
    """Comma-separated environment values become lists; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KafkaSettings(BaseSettings):
    """The event log (``KOPPELHUB_KAFKA_…``)."""

    model_config = SettingsConfigDict(env_prefix="KOPPELHUB_KAFKA_", extra="ignore")

    bootstrap: str | None = Field(
        default=None, description="Bootstrap servers of an existing Kafka; unset starts the embedded broker."
    )
    topic: str = Field(default="koppelhub.events", description="Topic that carries every event.")
    dlq_topic: str = Field(default="koppelhub.events.dlq", description="Dead-letter topic for poison events.")
    partitions: int = Field(default=6, ge=1, description="Partitions per topic when the hub creates them.")
    replication_factor: int = Field(default=1, ge=1, description="Replication factor for created topics.")
    consumer_group: str = Field(default="koppelhub-projector", description="Consumer group of the projector.")
    session_timeout_ms: int = Field(default=10_000, ge=1000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(
        default=3_000,
        ge=100,
        description="Consumer heartbeat interval (Kafka's default; each member sends one per interval, "
        "idle or not).",
    )
    linger_ms: int = Field(
        default=0,
        ge=0,
        description="Producer linger: how long a send waits to batch (sends made while a produce "
        "request is out share the next one anyway).",
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="Longest a consumer fetch waits for data. Tansu holds an empty fetch for about half "
        "of this even when data arrives, so it bounds publish-to-projection latency.",
    )
    idle_poll_ms: int = Field(
        default=30_000,
        ge=10,
        description="A projector member that read nothing for a second stops fetching and looks again "
        "this often; a write to the log wakes it at once (another process's through PostgreSQL "
        "NOTIFY, sent again after a lost listening connection), and so does a rebalance, so this "
        "look is only the safety net for a lost wake-up or a record written around the hub.",
    )


class DeliverySettings(BaseSettings):
    """Webhook delivery (``KOPPELHUB_DELIVERY_…``)."""

    model_config = SettingsConfigDict(env_prefix="KOPPELHUB_DELIVERY_", extra="ignore")

    retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE.delays),
        description="Seconds between delivery attempts, comma-separated; its length = the number of retries.",
    )
    retry_jitter: float = Field(
        default=DEFAULT_JITTER,
        ge=0,
        lt=1,
        description="Spread of each retry delay as a fraction (0.2 = ±20 %).",
    )
    slow_down_seconds: float = Field(
        default=60.0, ge=0, description="Least wait before the next attempt after a 429 or a timeout."
    )
    retry_after_max_seconds: float = Field(
        default=86_400.0, gt=0, description="Longest Retry-After (429/503) that is honoured."
    )
    disable_after_seconds: float = Field(
        default=5 * 86_400.0,
        gt=0,
        description="A subscription with nothing but failed attempts for this long is disabled.",
    )
    secret_grace_seconds: float = Field(
        default=86_400.0, ge=0, description="After a secret rotation, how long the old secret also signs."
    )
    max_concurrency_per_subscription: int = Field(
        default=16, ge=1, description="Default cap on one subscription's deliveries in flight per dispatcher."
    )
    request_origin: str = Field(
        default="koppelhub.local",
        min_length=1,
        description="WebHook-Request-Origin sent in the CloudEvents webhook handshake (OPTIONS).",
    )
    handshake_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of the handshake and of a test delivery."
    )
    proxy: str | None = Field(
        default=None, description="HTTP(S) proxy for every delivery unless a subscription sets its own."
    )
    attempt_retention_days: float = Field(
        default=30.0, gt=0, description="How long finished deliveries and their attempt log are kept."
    )
    archive_retention_days: float = Field(
        default=30.0, gt=0, description="How long archived events no open or dead delivery needs are kept."
    )
    cleanup_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the dispatcher runs the retention cleanup."
    )
    allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs that sinks may resolve to although private/loopback (SSRF allow-list).",
    )
    timeout_seconds: float = Field(default=15.0, gt=0, description="Timeout of one delivery attempt.")
    concurrency: int = Field(
        default=160, ge=1, description="Deliveries in flight per dispatcher process (all subscriptions)."
    )
    batch_size: int = Field(default=200, ge=1, description="Outbox rows one dispatcher claims per round.")
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed delivery stays with one dispatcher before another may retry it.",
    )
    poll_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between outbox polls when no NOTIFY arrives (every change that makes "
        "a delivery due sends one, a listener that lost its connection wakes the dispatcher when it "
        "is back, retries and leases wake it at their due time, so this is only a safety net).",
    )

    _split = field_validator("retry_schedule", "allow_networks", mode="before")(_split_csv)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> DeliverySettings:
        # A lease shorter than an attempt lets a second dispatcher send while the first still waits.
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"KOPPELHUB_DELIVERY_LEASE_SECONDS ({self.lease_seconds}) must exceed "
                f"KOPPELHUB_DELIVERY_TIMEOUT_SECONDS ({self.timeout_seconds})"
            )
        return self


class ConnectorSettings(BaseSettings):
    """Connectors and imports (``KOPPELHUB_CONNECTORS_…``)."""

    model_config = SettingsConfigDict(env_prefix="KOPPELHUB_CONNECTORS_", extra="ignore")

    poll_seconds: float = Field(default=2.0, gt=0, description="How often the runner looks for due work.")
    concurrency: int = Field(default=4, ge=1, description="Connector runs and imports at once per process.")
    lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a claimed run stays with one process without progress."
    )
    backoff_seconds: float = Field(
        default=30.0, gt=0, description="Wait after a failed run; doubles per failure."
    )
    max_backoff_seconds: float = Field(default=3600.0, gt=0, description="Longest wait after failed runs.")
    max_upload_bytes: int = Field(
        default=512 * _ONE_MIB, ge=1024, description="Largest file an import accepts."
    )
    max_xml_bytes: int = Field(default=64 * _ONE_MIB, ge=1024, description="Largest AMEFF (XML) file read.")
    file_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories (comma-separated) that file connectors may read local paths from.",
    )
    allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs that connector URLs may resolve to although private/loopback (SSRF allow-list).",
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of a connector download.")
    # Import limits: what one file may make the parser hold or do (README "Import limits").
    import_max_rows: int = Field(
        default=1_048_576, ge=1, description="Highest row number a CSV or xlsx file may have."
    )
    import_max_cells: int = Field(
        default=20_000_000, ge=1, description="Most cells (rows x columns) one CSV or xlsx file may have."
    )
    import_max_cell_bytes: int = Field(
        default=128 * 1024, ge=64, description="Largest cell (UTF-8 bytes); a larger one is a row error."
    )
    import_max_row_bytes: int = Field(
        default=4 * _ONE_MIB, ge=1024, description="Largest row as stored (CSV text or xlsx XML), in bytes."
    )
    import_max_unzipped_bytes: int = Field(
        default=1024 * _ONE_MIB, ge=1024, description="Largest total unzipped size of an xlsx file."
    )
    import_max_part_bytes: int = Field(
        default=64 * _ONE_MIB,
        ge=1024,
        description="Largest xlsx part read whole (shared strings, styles; a sheet outside its rows).",
    )
    max_xml_elements: int = Field(
        default=5_000_000, ge=1, description="Most XML elements an AMEFF file may have."
    )
    #: KOPPELHUB_MAX_EVENT_BYTES, copied here by :class:`Settings`: imports obey the publish limit.
    _max_event_bytes: int = PrivateAttr(default=_ONE_MIB)

    _split = field_validator("file_roots", "allow_networks", mode="before")(_split_csv)

    @property
    def max_event_bytes(self) -> int:
        """The largest event an import or connector may produce (KOPPELHUB_MAX_EVENT_BYTES)."""
        return self._max_event_bytes


class Settings(BaseSettings):
    """All settings of one Koppelhub process."""

    model_config = SettingsConfigDict(env_prefix="KOPPELHUB_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL (postgresql://…); unset starts the embedded PostgreSQL."
    )
    data_dir: Path = Field(default=Path(".koppelhub"), description="Where embedded data and state live.")
    http_host: str = Field(default="127.0.0.1", description="API listen host.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="API listen port.")
    admin_token: str | None = Field(
        default=None, description="Bearer token with every right; unset: `run` generates and stores one."
    )
    metrics_token: str | None = Field(
        default=None, description="Bearer token GET /metrics requires; unset: /metrics is open."
    )
    metrics: bool = Field(
        default=True, description="Count and time in Prometheus metrics; false: nothing is counted."
    )
    source_urn: str = Field(
        default="urn:nld:oin:00000000000000000000:systeem:koppelhub",
        pattern=r"^urn:nld:\S+$",
        description="The hub's own CloudEvents source (NL GOV: urn:nld:oin:<OIN>:systeem:<name>).",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Base URL clients reach the API at (`dataref` of derived events); unset: listen address.",
    )
    # OIDC bearer JWTs (issue 12): set issuer and audience to accept them besides API tokens.
    oidc_issuer: str | None = Field(default=None, description="OIDC issuer (`iss`) whose JWTs are accepted.")
    oidc_audience: str | None = Field(default=None, description="Audience (`aud`) the JWTs must carry.")
    oidc_jwks_url: str | None = Field(
        default=None, description="The issuer's JWKS URL; unset: the `jwks_uri` of its discovery document."
    )
    oidc_roles_claim: str = Field(default="roles", description="JWT claim listing the caller's role names.")
    oidc_organisation_claim: str = Field(
        default="organisatie", description="JWT claim naming the caller's organisatie."
    )
    public_read: bool = Field(
        default=False,
        description="Landscape reads (public fields only) without a token, as a bezoeker.",
    )
    audit_retention_days: float = Field(
        default=365, gt=0, description="Days the audit trail keeps an entry (the only way one leaves it)."
    )
    write_ahead: bool | None = Field(
        default=None,
        description="Commit accepted events to PostgreSQL before the broker; unset: on if it is embedded.",
    )
    shutdown_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest a SIGTERM drain may take before the process exits anyway."
    )
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto",
        description="API processes of `koppelhub run` plus one; auto: one per core, 1: all roles in one.",
    )

    work_processes: int = Field(
        default=1,
        ge=1,
        description="Projector and dispatcher processes of `koppelhub run` when KOPPELHUB_WORKERS > 1.",
    )
    dispatch_processes: int = Field(
        default=1,
        ge=0,
        description="Dispatcher-only processes of `koppelhub run` when KOPPELHUB_WORKERS > 1: they take "
        "the deliveries the projector and dispatcher processes have no room for.",
    )
    work_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Steps (nice) the projector and dispatcher processes of `koppelhub run` run below its "
        "API processes' CPU priority; 0: the same priority.",
    )

    def worker_processes(self) -> int:
        """``KOPPELHUB_WORKERS`` resolved: ``auto`` is the number of cores this process may run
        on (its CPU affinity: ``taskset``, a container's cpuset), not every core of the host."""
        if isinstance(self.workers, int):
            return self.workers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, cores or 1)

    publish_rate_limit: str | None = Field(
        default=None, description="Events each principal may publish, e.g. `1000/second`; unset: no limit."
    )
    max_event_bytes: int = Field(default=_ONE_MIB, ge=1024, description="Largest accepted event.")

    @field_validator("publish_rate_limit")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value is not None:
            from limits import parse

            try:
                parse(value)
            except ValueError as e:
                raise ValueError(f"{value!r} is not a rate; write e.g. 1000/second or 500 per minute") from e
        return value

    max_request_bytes: int = Field(
        default=16 * _ONE_MIB, ge=1024, description="Largest accepted publish request."
    )
    max_batch_events: int = Field(
        default=10_000, ge=1, description="Most events one batch publish may carry (413 beyond: split it)."
    )
    max_extension_attributes: int = Field(
        default=32, ge=1, description="Most extension attributes one published event may carry."
    )
    # HTTP server limits (hub/api/limits.py, hub/api/protocol.py); README "Limits" lists them.
    http_max_json_bytes: int = Field(
        default=_ONE_MIB, ge=1024, description="Largest request body of every call but publish and imports."
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest a request head may take from its first byte to its last."
    )
    http_body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time a request body may take, on top of what its size earns."
    )
    http_body_min_rate: int = Field(
        default=64 * 1024, ge=1, description="Bytes per second that earn a body one more second."
    )
    http_idle_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a connection may stay open without sending a request."
    )
    http_max_connections: int = Field(
        default=1000, ge=1, description="Open HTTP connections at most; one more is closed at once."
    )
    http_parse_offload_bytes: int = Field(
        default=256 * 1024, ge=0, description="Publish bodies larger than this are parsed in a worker thread."
    )
    projector_batch_size: int = Field(
        default=1000, ge=1, description="Records the projector applies per transaction."
    )
    projector_members: int = Field(
        default=3, ge=1, le=64, description="Consumers of the projector's group in one process."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="Log rendering; auto is JSON unless stderr is a terminal."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    connectors: ConnectorSettings = Field(default_factory=ConnectorSettings)

    @model_validator(mode="after")
    def _oidc_needs_issuer_and_audience(self) -> Settings:
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError("set both KOPPELHUB_OIDC_ISSUER and KOPPELHUB_OIDC_AUDIENCE, or neither")
        return self

    @model_validator(mode="after")
    def _imports_obey_the_event_limit(self) -> Settings:
        # One owner of the event size limit: what an import or connector publishes obeys it too.
        self.connectors._max_event_bytes = self.max_event_bytes
        return self
