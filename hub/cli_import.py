"""``koppelhub import FILE``: one import from a terminal, with a progress bar and a summary.

Exit status: 0 when every row was imported, 3 when some rows were invalid (they are listed),
1 when the import failed as a whole (nothing after the failure point was published).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from hub.bootstrap import import_runner
from hub.bootstrap import migrate as migrate_schema
from hub.embedded import Infrastructure, embedded_broker_running, provision
from hub.errors import ConfigurationError, KoppelhubError
from hub.logging import configure_logging
from hub.services.imports import AMEFF, ImportSpec, import_spec
from hub.services.sync_rows import Tally
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
@click.option("--force", is_flag=True, help="Publish every row, also those unchanged since the last import.")
def import_command(
    file: Path,
    objecttype: str,
    organisatie: str,
    mode: str | None,
    sheet: str | None,
    gemma: bool,
    gemma_guid_property: str | None,
    force: bool,
) -> None:
    """Import a CSV, xlsx or AMEFF file; only changed rows are published."""
    settings = Settings()
    configure_logging(settings)
    spec = import_spec(
        organisatie,
        objecttype,
        file.resolve(),
        mode=mode,
        sheet=sheet,
        gemma=gemma,
        gemma_guid_property=gemma_guid_property,
        force=force,
    )
    if not settings.kafka.bootstrap and not embedded_broker_running(settings.data_dir):
        raise click.ClickException(
            f"no Koppelhub runs for the data dir {settings.data_dir.resolve()} (KOPPELHUB_DATA_DIR): "
            "the embedded broker keeps events in memory, so an import without a running hub would "
            "lose them. Start `koppelhub run` first with the same data dir (the same folder, or "
            "the same KOPPELHUB_DATA_DIR), or set KOPPELHUB_KAFKA_BOOTSTRAP."
        )
    try:
        infra = provision(settings)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from e
    try:
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
    embedded = not settings.kafka.bootstrap  # the broker keeps its log in memory: write ahead
    async with import_runner(
        settings, infra.kafka_bootstrap, infra.database_url, embedded_broker=embedded
    ) as runner:
        lifecycle = runner.lifecycle
        import_id = await lifecycle.start(spec)
        total = await asyncio.to_thread(_estimate_rows, spec.path)
        bar: Any = click.progressbar(length=total or 1, label="Importing", file=sys.stderr)
        with bar:
            done = 0

            def progress(t: Tally) -> None:
                nonlocal done
                bar.update(t.read - done)
                done = t.read

            outcome = await lifecycle.run(import_id, spec, claimed=False, on_progress=progress)
        if outcome.tally is None:
            return Tally(), outcome.error or "interrupted", []
        return outcome.tally, None, await lifecycle.store.errors(import_id, limit=ERRORS_LISTED)


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
