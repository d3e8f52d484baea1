"""Imports: an uploaded (or CLI) file run once through the connector of its format.

Every import goes the same way, whoever starts it: **create** (a row, ``queued``) → **start**
(``running``: claimed from the queue by the connectors role, or started at once by
``koppelhub import``) → **run** (the file's connector through :class:`~hub.services.sync.SyncRun`)
→ **finish** (``done`` with counts, or ``failed`` with the reason). :func:`import_spec` is the
one builder of what to import; :class:`ImportLifecycle` the one owner of those steps, used by
the API (create), the CLI (create, start, run) and the runner (claim, run).

The source of an import's events is ``<hub urn>:import:<organisatie>`` for CSV/xlsx,
``…:import:<organisatie>/ameff`` for AMEFF and ``…/gemma`` for GEMMA imports: stable per
organisation, so re-importing a file finds the fingerprints of the previous import and
publishes only what changed, and a full CSV import never withdraws what an AMEFF import made.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from connectors.base import Connector, ConnectorContext, ConnectorError
from connectors.events import import_source
from connectors.registry import create
from hub.errors import KoppelhubError
from hub.ports import ImportRecord, ImportStore
from hub.ports.audit import AuditEntry
from hub.ports.connectors import Owner, SyncScope
from hub.services.sync_rows import Interrupted, Progress, Tally

log = structlog.get_logger(__name__)

#: What ``objecttype`` may be on an import: a landscape object type or an AMEFF file.
AMEFF = "ameff"
#: The option that publishes every row whatever the fingerprints say (repairs a landscape).
FORCE = "force"


@dataclass(frozen=True)
class ImportSpec:
    organisatie: str
    objecttype: str
    mode: str
    filename: str
    path: Path
    options: dict[str, Any]

    @classmethod
    def of(cls, record: ImportRecord) -> ImportSpec:
        """The spec a queued import was created with."""
        return cls(
            record.organisatie,
            record.objecttype,
            record.mode,
            record.filename,
            Path(record.path),
            record.options,
        )


def import_spec(
    organisatie: str,
    objecttype: str,
    path: Path,
    *,
    filename: str | None = None,
    mode: str | None = None,
    sheet: str | None = None,
    gemma: bool = False,
    gemma_guid_property: str | None = None,
    force: bool = False,
) -> ImportSpec:
    """What to import, from the choices the API form and the CLI offer alike: AMEFF files are
    ``full`` unless told otherwise, the rest ``incremental``; ``gemma`` only applies to AMEFF."""
    options: dict[str, Any] = {FORCE: True} if force else {}
    if sheet:
        options["sheet"] = sheet
    if objecttype == AMEFF:
        options["gemma"] = gemma
        if gemma_guid_property:
            options["gemma_guid_property"] = gemma_guid_property
    return ImportSpec(
        organisatie,
        objecttype,
        mode or ("full" if objecttype == AMEFF else "incremental"),
        filename or path.name,
        path,
        options,
    )


def import_kind(spec: ImportSpec) -> str:
    if spec.objecttype == AMEFF:
        return "ameff"
    return "excel" if spec.filename.lower().endswith((".xlsx", ".xlsm")) else "csv"


def import_scope(hub_urn: str, spec: ImportSpec) -> SyncScope:
    key = spec.organisatie
    if spec.objecttype == AMEFF:
        key += "/gemma" if spec.options.get("gemma") else "/ameff"
    return SyncScope(
        source=import_source(hub_urn, "import", key), organisatie=spec.organisatie, key=f"import:{key}"
    )


def import_connector(spec: ImportSpec, context: ConnectorContext) -> Connector[Any]:
    """The connector that reads this import's file; ValidationError for bad options."""
    options = {k: v for k, v in spec.options.items() if k != FORCE}  # the run's, not the connector's
    config: dict[str, Any] = {"location": str(spec.path), "mode": spec.mode, **options}
    if spec.objecttype != AMEFF:
        config["objecttype"] = spec.objecttype
    return create(import_kind(spec), config, context)


def check_options(spec: ImportSpec) -> None:
    """Raise ValidationError when the spec's options do not fit its file's connector (before
    anything is stored)."""
    import_connector(spec, ConnectorContext(spec.organisatie, "check", spec.path.parent))


def owner(import_id: uuid.UUID) -> Owner:
    return Owner("import", import_id)


#: Runs one import's file to the end: (import id, spec, progress hook) → counts.
Execute = Callable[[uuid.UUID, ImportSpec, Progress | None], Awaitable[Tally]]


@dataclass(frozen=True)
class ImportOutcome:
    """How a run ended: ``tally`` when it finished (``error`` None) or ``error`` when it failed;
    both None when it was requeued (the process is stopping)."""

    tally: Tally | None = None
    error: str | None = None

    @property
    def requeued(self) -> bool:
        return self.tally is None and self.error is None


def _discard_upload(path: Path, uploads: Path) -> None:
    """An uploaded file and its per-import folder go once the import ended; a file elsewhere
    (``koppelhub import`` reads the user's own file) is never touched."""
    if not path.resolve().is_relative_to(uploads.resolve()):
        return
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


class ImportLifecycle:
    """create → start → run → finish over an :class:`ImportStore`; ``execute`` runs the file
    (the connector runner's :meth:`~hub.services.connectors.ConnectorRunner.execute_import`),
    needed only by :meth:`run`. Uploads under ``uploads_dir`` are deleted when the import ends."""

    def __init__(self, store: ImportStore, uploads_dir: Path, execute: Execute | None = None) -> None:
        self.store, self.uploads_dir, self._execute = store, uploads_dir, execute

    async def create(
        self, spec: ImportSpec, import_id: uuid.UUID | None = None, *, audit: AuditEntry | None = None
    ) -> ImportRecord:
        """Queue an import (``queued``): a connectors role claims and runs it; ``audit`` is
        written with it."""
        return await self.store.create(
            import_id=import_id or uuid.uuid4(),
            organisatie=spec.organisatie,
            objecttype=spec.objecttype,
            mode=spec.mode,
            filename=spec.filename,
            path=str(spec.path),
            options=spec.options,
            audit=audit,
        )

    async def start(self, spec: ImportSpec) -> uuid.UUID:
        """Create an import and mark it running here, past the queue (``koppelhub import``)."""
        record = await self.create(spec)
        await self.store.start(record.id)
        return record.id

    async def run(
        self,
        import_id: uuid.UUID,
        spec: ImportSpec,
        *,
        claimed: bool,
        on_progress: Progress | None = None,
    ) -> ImportOutcome:
        """Run a started import to its end and record the outcome (``finish``).

        :class:`Interrupted` (the runner stops at a batch boundary) gives it back to the queue.
        A cancellation (Ctrl-C, an outage) of an import ``claimed`` from the queue leaves it to be
        taken over when its lease runs out; one started here has nobody to take it over, so it
        is failed as ``interrupted`` and the cancellation goes on."""
        assert self._execute is not None, "this lifecycle cannot run imports"
        bound = log.bind(import_id=str(import_id), objecttype=spec.objecttype)
        try:
            tally = await self._execute(import_id, spec, on_progress)
        except Interrupted:
            with contextlib.suppress(KoppelhubError):  # else its lease runs out and it is taken over then
                await self.store.requeue(import_id)
            bound.info("import_requeued")
            return ImportOutcome()
        except (ConnectorError, KoppelhubError, ValidationError) as e:
            bound.warning("import_failed", error=str(e))
            return await self._fail(import_id, spec, str(e))
        except Exception as e:  # noqa: BLE001 - one broken import must not stop the runner
            bound.exception("import_crashed")
            return await self._fail(import_id, spec, f"internal error: {e!r}")
        except BaseException:
            if not claimed:
                with contextlib.suppress(KoppelhubError):
                    await asyncio.shield(self.store.finish(import_id, error="interrupted"))
            raise
        # The run's notes (what it did not do, and why) go with its counts, as a connector run's do.
        counts = {**tally.counts(), "notes": tally.notes} if tally.notes else tally.counts()
        await self.store.finish(import_id, error=None, counts=counts, report=tally.per_type)
        _discard_upload(spec.path, self.uploads_dir)
        bound.info("import_completed", **tally.counts())
        return ImportOutcome(tally=tally)

    async def _fail(self, import_id: uuid.UUID, spec: ImportSpec, error: str) -> ImportOutcome:
        with contextlib.suppress(KoppelhubError):
            await self.store.finish(import_id, error=error)
        _discard_upload(spec.path, self.uploads_dir)
        return ImportOutcome(error=error)


__all__ = [
    "AMEFF",
    "FORCE",
    "ImportLifecycle",
    "ImportOutcome",
    "ImportSpec",
    "check_options",
    "import_connector",
    "import_kind",
    "import_scope",
    "import_spec",
    "owner",
]
