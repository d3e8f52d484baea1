"""The ``connectors`` role: runs every enabled connector on its schedule and every queued import.

Each run is its own task: one failing connector never stops the others. A failed run is
retried after a backoff that doubles per consecutive failure (capped). Claims are leases in
PostgreSQL (``FOR UPDATE SKIP LOCKED``), renewed by every committed batch, so several
``connectors`` processes share the work and a crashed one's work is taken over when its
lease runs out. Graceful stop: no new claims, running work stops at its next batch boundary
(everything committed so far stays; an import goes back to the queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from connectors import kinds as _kinds  # noqa: F401 - registers every connector kind
from connectors.base import ConnectorContext, ConnectorError, Egress, ImportLimits
from connectors.events import import_source
from connectors.registry import create
from hub.errors import KoppelhubError
from hub.ports import ConnectorRecord, ConnectorStore, EventLog, ImportRecord, ImportStore, LandscapeReader
from hub.ports.connectors import FingerprintStore, Owner, RunStore, SyncScope
from hub.ports.metrics import NO_METRICS, Metrics
from hub.services.imports import FORCE, ImportLifecycle, ImportSpec, import_connector, import_scope, owner
from hub.services.ownership import Owners
from hub.services.passthrough import PassThroughRun
from hub.services.relay import RelayRun
from hub.services.source_owners import read_numbers
from hub.services.sync import SyncRun
from hub.services.sync_rows import Interrupted, Progress, Tally
from hub.settings import ConnectorSettings
from hub.tracing import tracer

log = structlog.get_logger(__name__)

__all__ = [
    "ConnectorContexts",
    "ConnectorRunner",
    "Interrupted",
    "gemeente_names",
    "organisatie_known",
    "summary",
]


def organisatie_known(landscape: LandscapeReader) -> Callable[[str], Awaitable[bool]]:
    """Whether the landscape knows an organisation of this id (for
    :attr:`ConnectorContext.is_organisatie`)."""

    async def known(organisatie: str) -> bool:
        return await landscape.get("organisatie", organisatie) is not None

    return known


def gemeente_names(landscape: LandscapeReader) -> Callable[[], Awaitable[dict[str, str]]]:
    """Reads the landscape's municipalities as exact ``naam`` → id (for
    :attr:`ConnectorContext.gemeenten`); a name two of them share matches neither."""

    async def read() -> dict[str, str]:
        names: dict[str, str] = {}
        shared: set[str] = set()
        after: str | None = None
        while True:
            page = await landscape.list("organisatie", {"type": "Gemeente"}, after=after, limit=1000)
            for item in page.items:
                naam = str(item.state.get("naam") or "")
                if naam in names and names[naam] != item.state["id"]:
                    shared.add(naam)
                names[naam] = str(item.state["id"])
            if page.next_cursor is None:
                return {n: i for n, i in names.items() if n and n not in shared}
            after = page.next_cursor

    return read


def summary(tally: Tally) -> dict[str, Any]:
    return {**tally.counts(), "perType": tally.per_type, "errors": tally.sample_errors, "notes": tally.notes}


@dataclass(frozen=True)
class ConnectorContexts:
    """Builds the :class:`ConnectorContext` of a connector instance from the settings: the one
    place that says what a connector may read, reach and hold (the runner, the write-back sink
    and ``POST /connectors/{id}/test`` all use it)."""

    settings: ConnectorSettings
    data_dir: Path
    egress: Egress | None = None
    #: This hub's identity (its source URN), which federation connectors must not take back.
    hub: str = ""
    gemeenten: Callable[[], Awaitable[Mapping[str, str]]] | None = None
    is_organisatie: Callable[[str], Awaitable[bool]] | None = None

    def __call__(
        self, organisatie: str, scope: str, *, xml: bool = False, roots: tuple[Path, ...] = ()
    ) -> ConnectorContext:
        s = self.settings
        return ConnectorContext(
            organisatie=organisatie,
            scope=scope,
            work_dir=self.data_dir / "connectors",
            file_roots=roots or tuple(s.file_roots),
            egress=self.egress,
            max_bytes=min(s.max_xml_bytes, s.max_upload_bytes) if xml else s.max_upload_bytes,
            http_timeout_s=s.http_timeout_seconds,
            hub=self.hub,
            gemeenten=self.gemeenten,
            is_organisatie=self.is_organisatie,
            limits=ImportLimits(
                max_rows=s.import_max_rows,
                max_cells=s.import_max_cells,
                max_cell_bytes=s.import_max_cell_bytes,
                max_row_bytes=s.import_max_row_bytes,
                max_unzipped_bytes=s.import_max_unzipped_bytes,
                max_part_bytes=s.import_max_part_bytes,
                max_xml_elements=s.max_xml_elements,
            ),
        )


class ConnectorRunner:
    """Claims and runs connectors and queued imports; built by ``hub.bootstrap.connector_runner``.

    ``egress`` makes the transport of connector HTTP requests (the SSRF-guarded one, with
    KOPPELHUB_CONNECTORS_ALLOW_NETWORKS); None: connectors may not use the network."""

    def __init__(
        self,
        connectors: ConnectorStore,
        imports: ImportStore,
        fingerprints: FingerprintStore,
        event_log: EventLog,
        settings: ConnectorSettings,
        *,
        hub_urn: str,
        data_dir: Path,
        egress: Egress | None = None,
        runs: RunStore | None = None,
        owners: Owners | None = None,
        metrics: Metrics = NO_METRICS,
        landscape: LandscapeReader | None = None,
    ) -> None:
        self.owners = owners  # the landscape's owner lookup: rows may not touch others' objects
        #: The landscape's objects: another organisatie stays as its own source stated it.
        self.stored = landscape.objects if landscape is not None else None
        #: The organisaties' numbers: an organisatie row may not give another's.
        self.numbers = read_numbers(landscape) if landscape is not None else None
        self.metrics = metrics
        self.connectors, self.imports, self.fingerprints = connectors, imports, fingerprints
        self.runs = runs
        self.event_log, self.settings, self.hub_urn = event_log, settings, hub_urn
        self.data_dir = data_dir
        self.egress = egress
        names = gemeente_names(landscape) if landscape is not None else None
        known = organisatie_known(landscape) if landscape is not None else None
        self.contexts = ConnectorContexts(settings, data_dir, egress, hub_urn, names, known)
        #: The one path of every import (create → start → run → finish).
        self.lifecycle = ImportLifecycle(imports, self.uploads_dir, self._execute)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool: ProcessPoolExecutor | None = None

    def mapping_pool(self) -> Executor:
        """The one-worker process pool that maps and serialises large batches (the second core),
        started on first use (``spawn``: no fork of this process's threads and event loop) and
        shared by every run of this runner; :meth:`close` stops it."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def _sync(self, run: SyncRun, checkpoint: dict[str, Any] | None) -> Tally:
        try:
            return await run.execute(checkpoint)
        except BrokenExecutor:
            await asyncio.to_thread(self.close)  # the worker died (e.g. out of memory): a new one next run
            raise

    def close(self) -> None:
        """Stop the mapping worker, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "imports"

    def wake(self) -> None:
        self._wake.set()

    def context(
        self, organisatie: str, scope: str, *, xml: bool = False, roots: tuple[Path, ...] = ()
    ) -> ConnectorContext:
        return self.contexts(organisatie, scope, xml=xml, roots=roots)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run work until ``stop`` is set; then let running work reach a batch boundary."""
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._claim()
                self._wake.clear()
                waiters = {stopper, asyncio.create_task(self._wake.wait()), *self._tasks}
                done, _ = await asyncio.wait(
                    waiters, timeout=self.settings.poll_seconds, return_when="FIRST_COMPLETED"
                )
                for w in waiters - done - self._tasks - {stopper}:
                    w.cancel()
        finally:
            stopper.cancel()
            self._stopping.set()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.settings.lease_seconds)
            await asyncio.to_thread(self.close)

    async def _claim(self) -> None:
        """Claim what is due, up to the free slots. An idle runner looks first (one statement,
        :meth:`ConnectorStore.work_waiting`) and claims only when there is something: its poll
        made two claim transactions every ``poll_seconds`` before (issue 17: idle CPU)."""
        free = self.settings.concurrency - len(self._tasks)
        try:
            if free > 0 and not self._tasks and not await self.connectors.work_waiting():
                return
            while free > 0:
                record = await self.imports.claim()
                if record is None:
                    break
                self._spawn(self.run_import(record))
                free -= 1
            if free > 0:
                for connector in await self.connectors.claim_due(free):
                    self._spawn(self.run_connector(connector))
        except KoppelhubError as e:
            log.warning("connector_claim_failed", error=str(e))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_stop(self, _: Tally) -> None:
        if self._stopping.is_set():
            raise Interrupted("the process is stopping")

    async def run_connector(self, record: ConnectorRecord) -> None:
        """One run of one connector, as a span."""
        with tracer().start_as_current_span("connector run") as span:
            span.set_attribute("koppelhub.connector.id", str(record.id))
            span.set_attribute("koppelhub.connector.kind", record.kind)
            await self._run_connector(record)

    async def _run_connector(self, record: ConnectorRecord) -> None:
        """One run of one connector; its outcome goes into its status and its run history,
        never out of here."""
        bound = log.bind(connector_id=str(record.id), kind=record.kind)
        scope = SyncScope(
            import_source(self.hub_urn, "connector", str(record.id)), record.organisatie, str(record.id)
        )
        run_id = await self._start_run(record)
        error: str | None = None
        tally: Tally | None = None
        connector = None
        try:
            ctx = self.context(record.organisatie, str(record.id), xml=record.kind == "ameff")
            connector = create(record.kind, record.config, ctx)
            owner_ = Owner("connector", record.id)
            if connector.relay:
                relaying = RelayRun(
                    connector,
                    scope,
                    owner_,
                    self.fingerprints,
                    self.event_log,
                    max_event_bytes=self.settings.max_event_bytes,
                    on_progress=self._check_stop,
                )
                tally = await relaying.execute(record.checkpoint)
            elif connector.passthrough:
                passing = PassThroughRun(
                    connector,
                    scope,
                    owner_,
                    self.fingerprints,
                    self.event_log,
                    on_progress=self._check_stop,
                    max_event_bytes=self.settings.max_event_bytes,
                    stored=self.stored,
                )
                tally = await passing.execute(record.checkpoint)
            else:
                run = SyncRun(
                    connector,
                    scope,
                    owner_,
                    self.fingerprints,
                    self.event_log,
                    on_progress=self._check_stop,
                    executor=self.mapping_pool,
                    max_event_bytes=self.settings.max_event_bytes,
                    owners=self.owners,
                    numbers=self.numbers,
                    stored=self.stored,
                )
                tally = await self._sync(run, record.checkpoint)
        except Interrupted:
            await self.connectors.finish(record.id, error=None, counts=None, next_in_seconds=0)
            await self._finish_run(run_id, "interrupted", tally, None, None)
            bound.info("connector_run_interrupted")
            return
        except ValidationError as e:  # never its input: a stored config's secrets, for one
            error = "ValidationError: " + "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}"
                for err in e.errors(include_url=False, include_input=False)
            )
        except (ConnectorError, KoppelhubError, KeyError) as e:
            error = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - a bug in one connector must not stop the others
            bound.exception("connector_run_crashed")
            error = f"internal error: {e!r}"
        backoff = min(
            self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** min(record.failures, 20)
        )
        next_in = record.schedule_seconds if error is None else backoff
        with contextlib.suppress(KoppelhubError):
            await self.connectors.finish(
                record.id, error=error, counts=summary(tally) if tally else None, next_in_seconds=next_in
            )
        diagnostics = connector.diagnostics if connector is not None and error else None
        await self._finish_run(run_id, "failed" if error else "succeeded", tally, error, diagnostics)
        self.metrics.connector_run(record.kind, "error" if error else "ok")
        if error:
            bound.warning("connector_run_failed", error=error, retry_in_s=next_in)
        else:
            assert tally is not None
            bound.info("connector_run_completed", **tally.counts())

    async def _start_run(self, record: ConnectorRecord) -> uuid.UUID | None:
        if self.runs is None:
            return None
        with contextlib.suppress(KoppelhubError):
            return await self.runs.start_run(record.id, record.checkpoint)
        return None

    async def _finish_run(
        self,
        run_id: uuid.UUID | None,
        status: str,
        tally: Tally | None,
        error: str | None,
        diagnostics: dict[str, Any] | None,
    ) -> None:
        if self.runs is None or run_id is None:
            return
        counts = tally.counts() if tally else {}
        errors = [
            {"item": e.get("row"), "message": e["message"]} for e in (tally.sample_errors if tally else [])
        ]
        if error:
            errors.append({"item": None, "message": error})
        with contextlib.suppress(KoppelhubError):
            await self.runs.finish_run(
                run_id, status=status, counts=counts, errors=errors, diagnostics=diagnostics
            )

    async def run_import(self, record: ImportRecord) -> None:
        """Run an import claimed from the queue to its end; its outcome goes into its row."""
        await self.lifecycle.run(record.id, ImportSpec.of(record), claimed=True, on_progress=self._check_stop)

    async def _execute(self, import_id: uuid.UUID, spec: ImportSpec, on_progress: Progress | None) -> Tally:
        return await self.execute_import(import_id, spec, on_progress=on_progress)

    async def execute_import(
        self, import_id: uuid.UUID, spec: ImportSpec, *, on_progress: Callable[[Tally], None] | None = None
    ) -> Tally:
        """Run one import to the end (also used by ``koppelhub import``)."""
        ctx = self.context(
            spec.organisatie,
            f"import:{spec.organisatie}",
            xml=spec.objecttype == "ameff",
            roots=(spec.path.parent,),
        )
        connector = import_connector(spec, ctx)
        run = SyncRun(
            connector,
            import_scope(self.hub_urn, spec),
            owner(import_id),
            self.fingerprints,
            self.event_log,
            on_progress=on_progress,
            executor=self.mapping_pool,
            max_event_bytes=self.settings.max_event_bytes,
            owners=self.owners,
            numbers=self.numbers,
            stored=self.stored,
            force=bool(spec.options.get(FORCE)),
        )
        return await self._sync(run, None)
