"""``koppelhub import FILE``: one import from a terminal, with a progress bar and a summary.

Exit status: 0 when every row was imported, 3 when some rows were invalid (they are listed),
1 when the import failed as a whole (nothing after the failure point was published).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from connectors.base import ConnectorError
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.engine import migrate as migrate_schema
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.embedded import Infrastructure, provision
from hub.errors import ConfigurationError, KoppelhubError
from hub.logging import configure_logging
from hub.services.connectors import ConnectorRunner
from hub.services.imports import AMEFF, ImportSpec
from hub.services.sync import Tally
from hub.settings import Settings
from schemas.landscape import OBJECT_TYPES

EXIT_INVALID_ROWS = 3
ERRORS_LISTED = 20


def _estimate_rows(path: Path) -> int | None:
    if path.suffix.lower() not in (".csv", ".txt"):
        return None
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(lines - 1, 1)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--objecttype", required=True, type=click.Choice([*OBJECT_TYPES, AMEFF]), help="What the rows are."
)
@click.option("--organisatie", required=True, help="id of the importing organisatie.")
@click.option(
    "--mode", type=click.Choice(["incremental", "full"]), help="full withdraws rows that disappeared."
)
@click.option("--sheet", help="xlsx: the sheet to read (default: the first).")
@click.option(
    "--gemma", is_flag=True, help="ameff: import ApplicationComponents as GEMMA referentiecomponenten."
)
@click.option("--gemma-guid-property", help="ameff --gemma: name or id of the GUID property definition.")
def import_command(
    file: Path,
    objecttype: str,
    organisatie: str,
    mode: str | None,
    sheet: str | None,
    gemma: bool,
    gemma_guid_property: str | None,
) -> None:
    """Import a CSV, xlsx or AMEFF file; only changed rows are published."""
    settings = Settings()
    configure_logging(settings)
    options: dict[str, Any] = {}
    if sheet:
        options["sheet"] = sheet
    if objecttype == AMEFF:
        options["gemma"] = gemma
        if gemma_guid_property:
            options["gemma_guid_property"] = gemma_guid_property
    path = file.resolve()
    spec = ImportSpec(
        organisatie,
        objecttype,
        mode or ("full" if objecttype == AMEFF else "incremental"),
        path.name,
        path,
        options,
    )
    try:
        infra = provision(settings)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from e
    try:
        if infra.broker is not None and infra.broker.owned:
            raise click.ClickException(
                "no Koppelhub runs for this data dir: the embedded broker keeps events in memory, so they "
                "would be lost when this command exits. Start `koppelhub run` first, or set "
                "KOPPELHUB_KAFKA_BOOTSTRAP."
            )
        migrate_schema(infra.database_url)
        tally, failure, errors = asyncio.run(_run(settings, infra, spec))
    except KoppelhubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        infra.close()
    _report(tally, failure, errors)


async def _run(
    settings: Settings, infra: Infrastructure, spec: ImportSpec
) -> tuple[Tally, str | None, list[Any]]:
    c = settings.connectors
    engine = create_engine(infra.database_url, pool_size=2)
    await ensure_topics(infra.kafka_bootstrap, settings.kafka)
    event_log = KafkaEventLog(infra.kafka_bootstrap, settings.kafka)
    await event_log.start()
    imports = PostgresImportStore(engine, lease_seconds=c.lease_seconds)
    runner = ConnectorRunner(
        PostgresConnectorStore(engine),
        imports,
        PostgresFingerprintStore(engine, lease_seconds=c.lease_seconds),
        event_log,
        c,
        hub_urn=settings.source_urn,
        data_dir=settings.data_dir,
    )
    import_id = uuid.uuid4()
    try:
        await imports.create(
            import_id=import_id,
            organisatie=spec.organisatie,
            objecttype=spec.objecttype,
            mode=spec.mode,
            filename=spec.filename,
            path=str(spec.path),
            options=spec.options,
        )
        await imports.start(import_id)
        total = await asyncio.to_thread(_estimate_rows, spec.path)
        stderr = sys.stderr
        bar: Any = click.progressbar(length=total or 1, label="Importing", file=stderr)
        with bar:
            done = 0

            def progress(t: Tally) -> None:
                nonlocal done
                bar.update(t.read - done)
                done = t.read

            try:
                tally = await runner.execute_import(import_id, spec, on_progress=progress)
            except ConnectorError as e:
                await imports.finish(import_id, error=str(e))
                return Tally(), str(e), []
            except BaseException:  # Ctrl-C or an outage: the row must not wait to be claimed
                with contextlib.suppress(KoppelhubError):
                    await asyncio.shield(imports.finish(import_id, error="interrupted"))
                raise
        await imports.finish(import_id, error=None, counts=tally.counts(), report=tally.per_type)
        return tally, None, await imports.errors(import_id, limit=ERRORS_LISTED)
    finally:
        await asyncio.to_thread(runner.close)
        await event_log.stop()
        await engine.dispose()


def _report(tally: Tally, failure: str | None, errors: list[Any]) -> None:
    if failure:
        raise click.ClickException(f"import failed, nothing more was published: {failure}")
    c = tally.counts()
    click.echo(
        f"Read {c['read']} rows: {c['published']} published, {c['unchanged']} unchanged, "
        f"{c['invalid']} invalid, {c['withdrawn']} withdrawn."
    )
    for objecttype, row in sorted(tally.per_type.items()):
        click.echo(f"  {objecttype}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    for note in tally.notes:
        click.echo(f"Note: {note}")
    if c["invalid"]:
        for e in errors:
            where = f"row {e.row}" if e.row is not None else "file"
            click.echo(f"  {where}, {e.column}: {e.message}", err=True)
        if c["invalid"] > len(errors):
            click.echo(f"  … and more ({c['invalid']} invalid rows in all)", err=True)
        raise SystemExit(EXIT_INVALID_ROWS)
