"""``koppelhub``: one program, a sub-command per role.

Every command uses the same settings and data dir. Commands that need the broker or the
database use the configured ones, else the embedded ones already running for this data dir,
else start them (and stop what they started when they exit).
"""

from __future__ import annotations

import asyncio
import socket

import click

from hub.bootstrap import KAFKA_ROLES, ROLES, observability
from hub.bootstrap import migrate as migrate_schema
from hub.bootstrap import rebuild as rebuild_landscape
from hub.cli_actor import cli_entry
from hub.cli_import import import_command
from hub.cli_operators import dlq, status
from hub.cli_receive import receive_command
from hub.cli_token import token_command
from hub.errors import KoppelhubError
from hub.serve import LastResort, load_settings, provision_for, run_loop, run_process, serve

__all__ = ["main", "run_loop"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Koppelhub: CloudEvents in, landscape in PostgreSQL, signed webhooks out."""


@main.command()
def run() -> None:
    """Run every role (embedded broker and database unless configured), spread over
    KOPPELHUB_WORKERS processes (default: one per core): KOPPELHUB_WORKERS - 1 for the API and
    connectors, KOPPELHUB_WORK_PROCESSES (default 1) for the projector and dispatcher, and
    KOPPELHUB_DISPATCH_PROCESSES (default 1) dispatchers for what they have no room for."""
    serve(ROLES)


@main.command()
def api() -> None:
    """Serve the HTTP API (publish, subscriptions, health)."""
    serve(("api",))


@main.command()
def projector() -> None:
    """Consume the event log into PostgreSQL (one consumer-group member)."""
    serve(("projector",))


@main.command()
def dispatcher() -> None:
    """Deliver queued webhooks (several may run side by side)."""
    serve(("dispatcher",))


@main.command()
def connectors() -> None:
    """Run connectors on their schedules and queued imports (several may run side by side)."""
    serve(("connectors",))


@main.command("worker", hidden=True)
@click.option("--roles", required=True, help="Comma-separated roles of this child.")
@click.option("--listen-fd", type=int, default=None, help="The API socket the parent bound.")
@click.option("--ready-fd", type=int, default=None, help="Where to write 'ready' once started.")
@click.option("--spare", is_flag=True, help="A spare dispatcher (KOPPELHUB_DISPATCH_PROCESSES).")
def worker(roles: str, listen_fd: int | None, ready_fd: int | None, spare: bool) -> None:
    """A child of ``koppelhub run`` (hub/children.py): the given roles on the parent's broker,
    database and socket; the parent announces, migrates and owns the data dir."""
    settings = load_settings()
    observability(settings)
    wanted = tuple(r for r in ROLES if r in roles.split(","))
    infra = provision_for(settings, broker_needed=bool(KAFKA_ROLES & set(wanted)))
    sockets = [socket.socket(fileno=listen_fd)] if listen_fd is not None else None
    died: list[str] = []
    last_resort = LastResort()
    try:
        run_loop(
            run_process(
                settings,
                infra,
                wanted,
                None,
                died,
                last_resort,
                sockets=sockets,
                ready_fd=ready_fd,
                spare=spare,
            )
        )
    except KoppelhubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        infra.close()
    last_resort.disarm()


main.add_command(import_command)
main.add_command(receive_command)
main.add_command(token_command)
main.add_command(status)
main.add_command(dlq)


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (idempotent)."""
    settings = load_settings()
    infra = provision_for(settings, broker_needed=False)
    try:
        migrate_schema(infra.database_url)
        click.echo("Database schema is up to date.")
    finally:
        infra.close()


@main.command()
def rebuild() -> None:
    """Empty the landscape tables and replay the event archive into them.

    The result equals the live projection; no notification is sent again. Runs in one
    transaction: readers see the old landscape until it commits, and a running projector
    waits for it, then applies its next events on top. Its audit entry (actor ``cli``, the
    operating-system user) is written in that transaction.
    """
    settings = load_settings()
    infra = provision_for(settings, broker_needed=False)
    try:
        migrate_schema(infra.database_url)
        result = asyncio.run(rebuild_landscape(infra.database_url, cli_entry("rebuild", "landscape")))
        click.echo(
            f"Landscape rebuilt from the archive: {result.created} created, {result.changed} changed, "
            f"{result.deleted} deleted, {result.unchanged} unchanged, {result.stale} stale."
        )
    except KoppelhubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        infra.close()
