"""``koppelhub token create|list|revoke``: API tokens from the command line.

The operator at the hub's own machine acts as the admin (a functioneel-beheerder for all, see
:mod:`hub.cli_actor`), through the same :class:`~hub.services.tokens.TokenService` as the API;
the secret is printed once, on create. A create or revoke hands its audit entry to the token
store, which writes it in the change's own transaction, as the API's calls do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import click

from hub.api.tokens import token_json
from hub.bootstrap import migrate as migrate_schema
from hub.bootstrap import token_service
from hub.cli_actor import cli_entry, local_operator
from hub.embedded import provision
from hub.errors import ConfigurationError, KoppelhubError
from hub.logging import configure_logging
from hub.ports.tokens import TokenRecord
from hub.services.access import Role
from hub.services.tokens import TokenRefused, TokenService
from hub.settings import Settings

T = TypeVar("T")
OPERATOR = local_operator()


def _run(work: Callable[[TokenService], Awaitable[T]]) -> T:
    """Run ``work`` on the hub's database."""
    settings = Settings()
    configure_logging(settings)
    try:
        infra = provision(settings, broker_needed=False)
    except ConfigurationError as e:
        raise click.ClickException(str(e)) from e
    try:
        migrate_schema(infra.database_url)

        async def go() -> T:
            async with token_service(infra.database_url) as service:
                return await work(service)

        return asyncio.run(go())
    except TokenRefused as e:
        raise click.ClickException(f"{e.field}: {e}") from e
    except KoppelhubError as e:
        raise click.ClickException(str(e)) from e
    finally:
        infra.close()


@click.group("token")
def token_command() -> None:
    """Create, list and revoke API tokens."""


@token_command.command("create")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--organisatie", help="The organisation it acts for (required but for functioneel-beheerder).")
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="systeem: a source (prefix); federatie: a subscription id (repeatable).",
)
@click.option("--expires-at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]))
def create(
    name: str, role: str, organisatie: str | None, sources: tuple[str, ...], expires_at: datetime | None
) -> None:
    """Create a token; its secret is printed once, here."""

    given = ["name", "role"] + [f for f, v in (("organisatie", organisatie), ("sources", sources),
                                                 ("expiresAt", expires_at)) if v]  # fmt: skip
    audit = cli_entry("token create", "/api/v1/tokens/{id}", given)

    async def work(service: TokenService) -> tuple[TokenRecord, str]:
        return await service.create(
            OPERATOR,
            name=name,
            role=role,
            organisatie=organisatie,
            sources=list(sources),
            expires_at=expires_at,
            audit=audit,
        )

    record, secret = _run(work)
    click.echo(json.dumps(token_json(record) | {"token": secret}, indent=2))


@token_command.command("list")
def list_tokens() -> None:
    """The tokens not revoked (never their secrets)."""
    records = _run(lambda service: service.list(OPERATOR))
    click.echo(json.dumps([token_json(r) for r in records], indent=2))


@token_command.command("revoke")
@click.argument("token_id", type=click.UUID)
def revoke(token_id: uuid.UUID) -> None:
    """Revoke a token: every API process refuses it within seconds."""
    audit = cli_entry("token revoke", f"/api/v1/tokens/{token_id}")
    _run(lambda service: service.revoke(OPERATOR, token_id, audit=audit))
    click.echo(f"Token {token_id} revoked.")
