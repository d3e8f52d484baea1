"""``koppelhub status`` and ``koppelhub dlq list|redrive``: the operator calls from a terminal,
against the broker and database of a running hub (the same documents as the HTTP API)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from hub.bootstrap import audit_trail, operator_tools
from hub.cli_actor import cli_entry
from hub.embedded import embedded_broker_running, provision
from hub.errors import ConfigurationError, KoppelhubError
from hub.logging import configure_logging
from hub.ports.audit import AuditEntry
from hub.ports.members import MemberRegistry
from hub.ports.operators import LogInspector, OperationsStore, Position, parse_position
from hub.services.status import dead_letter_document, hub_status, redriven_document
from hub.settings import Settings

__all__ = ["dlq", "status"]

T = TypeVar("T")


def _against_running_hub(
    work: Callable[[LogInspector, OperationsStore, MemberRegistry], Awaitable[T]],
    audit: AuditEntry | None = None,
) -> T:
    """Run ``work`` with the operator ports of the hub that runs for this data dir (or the
    configured broker and database); refuses when only a fresh embedded broker would answer.
    ``audit``, for a change, is written once ``work`` is done: the change is a produce to Kafka,
    with no database transaction to carry it (the API's redrive is recorded the same way)."""
    settings = Settings()
    configure_logging(settings)
    no_hub = click.ClickException(
        f"no Koppelhub runs for the data dir {settings.data_dir}: start `koppelhub run` first, "
        "set KOPPELHUB_DATA_DIR to the running hub's data dir, or set KOPPELHUB_KAFKA_BOOTSTRAP."
    )
    if not settings.kafka.bootstrap and not embedded_broker_running(settings.data_dir):
        raise no_hub  # before provision, which would start a broker only to find it empty
    try:
        infra = provision(settings)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from e
    try:
        if infra.broker is not None and infra.broker.owned:  # the hub stopped meanwhile
            raise no_hub

        async def run() -> T:
            async with operator_tools(settings, infra.kafka_bootstrap, infra.database_url) as tools:
                done = await work(*tools)
            if audit is not None:
                async with audit_trail(infra.database_url) as trail:
                    await trail.record(audit)
            return done

        return asyncio.run(run())
    except KoppelhubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        infra.close()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the document of GET /api/v1/status.")
def status(as_json: bool) -> None:
    """Lag, outbox, failing subscriptions and connectors, imports and the DLQ of a running hub."""
    doc = _against_running_hub(hub_status)
    click.echo(json.dumps(doc, indent=2) if as_json else render_status(doc))


def render_status(doc: dict[str, Any]) -> str:
    """The status document as a few aligned tables for a terminal."""
    lines: list[str] = []
    log = doc["log"]
    if "error" in log:
        lines.append(f"Log: unavailable ({log['error']})")
    else:
        lines.append(f"Topic {log['topic']}, group {log['group']} ({log['groupState']}), lag {log['lag']}")
        lines.append(f"  {'partition':>9}  {'end':>10}  {'committed':>10}  {'lag':>8}")
        for p in log["partitions"]:
            committed = "-" if p["committed"] is None else p["committed"]
            lines.append(f"  {p['partition']:>9}  {p['endOffset']:>10}  {committed:>10}  {p['lag']:>8}")
        for m in log["members"]:
            where = f"{m['host']} pid {m['pid']}" if m.get("pid") is not None else m["host"] or "-"
            owned = m["partitions"] or "-"
            lines.append(f"  member {m['memberId']} ({where}): partitions {owned}, lag {m.get('lag', 0)}")
        lines.append(f"DLQ {doc['dlq']['topic']}: {doc['dlq']['records']} records")
    o = doc["outbox"]
    age = o["oldestPendingAgeSeconds"]
    lines.append(
        f"Outbox: {o['pending']} pending, {o['failed']} failed, {o['dead']} dead"
        + (f"; oldest open {age:.0f} s" if age is not None else "")
    )
    subs = doc["subscriptions"]
    by = ", ".join(f"{n} {k}" for k, n in sorted(subs["byStatus"].items())) or "none"
    lines.append(f"Subscriptions: {by}")
    for s in subs["failing"]:
        lines.append(
            f"  failing {s['id']} {s['status']} since {s['failingSince'] or '-'}: "
            f"{s['consecutiveFailures']} failures, last error {s['lastError'] or s['statusReason'] or '-'}"
        )
    c = doc["connectors"]
    lines.append(
        f"Connectors: {c['total']} ({c['running']} running, {c['failing']} failing, {c['queued']} queued)"
    )
    for f in c["failingConnectors"]:
        lines.append(
            f"  failing {f['id']} {f['kind']} ({f['organisatie']}): {f['failures']}x {f['lastError']}"
        )
    i = doc["imports"]
    lines.append(f"Imports: {i['running']} running, {i['queued']} queued, {i['failed']} failed")
    for f in i["failedImports"][:5]:
        lines.append(f"  failed {f['id']} {f['filename']}: {f['error']}")
    return "\n".join(lines)


@click.group()
def dlq() -> None:
    """The dead-letter topic: list parked records, redrive them onto the events topic."""


@dlq.command("list")
@click.option("--after", help="Continue after this position (partition:offset, the `next` printed last).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the document of GET /api/v1/dlq.")
def dlq_list(after: str | None, limit: int, as_json: bool) -> None:
    """List dead-lettered records with their error."""
    try:
        position = parse_position(after) if after else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--after") from e

    async def work(log: LogInspector, _store: OperationsStore, _members: MemberRegistry) -> dict[str, Any]:
        page = await log.dead_letters(after=position, limit=limit)
        return {"items": [dead_letter_document(d) for d in page.items], "next": page.next}

    doc = _against_running_hub(work)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for item in doc["items"]:
        event = item["event"] or {}
        click.echo(
            f"{item['id']:>10}  {item['time'] or '-'}  {event.get('type', '-')}  id={event.get('id', '-')}\n"
            f"{'':>10}  {item['koppelhub_error_class']}: {item['koppelhub_error']}"
        )
    click.echo(f"{len(doc['items'])} records" + (f"; more after {doc['next']}" if doc["next"] else ""))


@dlq.command("redrive")
@click.argument("positions", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Redrive every record in the DLQ.")
def dlq_redrive(positions: tuple[str, ...], everything: bool) -> None:
    """Republish dead-lettered records (partition:offset …, or --all) onto the events topic."""
    if everything == bool(positions):
        raise click.UsageError("name the records (partition:offset …) or pass --all, not both")
    try:
        chosen: list[Position] | None = None if everything else [parse_position(p) for p in positions]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="POSITIONS") from e

    async def work(log: LogInspector, _store: OperationsStore, _members: MemberRegistry) -> dict[str, Any]:
        return redriven_document(await log.redrive(chosen))

    audit = cli_entry("dlq redrive", "/api/v1/dlq/redrive", ["all" if everything else "offsets"])
    doc = _against_running_hub(work, audit)
    click.echo(f"Redriven: {len(doc['redriven'])} records.")
    for s in doc["skipped"]:
        click.echo(f"Skipped {s['partition']}:{s['offset']}: {s['reason']}", err=True)
