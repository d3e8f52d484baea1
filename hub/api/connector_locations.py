"""Where a connector may read from: a URL outside blocked networks (the SSRF guard), or a
local path under ``KOPPELHUB_CONNECTORS_FILE_ROOTS`` that is not in another organisation's
folder."""

from __future__ import annotations

from pathlib import Path

from connectors.sources import foreign_folder, is_url, within
from hub.api.context import ApiContext
from hub.api.problems import ProblemError
from hub.services.connectors import organisatie_known
from subscriptions.ssrf import NetworkPolicy, SinkRefused, check_sink

__all__ = ["check_folder_owner", "check_location", "check_url"]


async def check_url(url: str, ctx: ApiContext, field: str = "config.url", title: str = "URL refused") -> None:
    try:
        await check_sink(url, NetworkPolicy.parse(ctx.settings.connectors.allow_networks))
    except SinkRefused as e:
        raise ProblemError(400, title, str(e), errors=[{"field": field, "message": str(e)}]) from e


async def check_location(location: str, ctx: ApiContext) -> None:
    c = ctx.settings.connectors
    if is_url(location):
        await check_url(location, ctx, "config.location", "Location refused")
        return
    roots = [r.resolve() for r in c.file_roots]
    if not within(Path(location), roots):
        message = (
            "must be an http(s) URL or an absolute path under KOPPELHUB_CONNECTORS_FILE_ROOTS "
            f"({', '.join(map(str, roots)) or 'none configured'})"
        )
        raise ProblemError(
            400, "Location refused", message, errors=[{"field": "config.location", "message": message}]
        )


async def check_folder_owner(location: str, organisatie: str, ctx: ApiContext) -> None:
    """403 when a local ``location`` lies in another organisation's folder
    (:func:`connectors.sources.foreign_folder`, the rule's owner)."""
    roots = ctx.settings.connectors.file_roots
    message = await foreign_folder(location, roots, organisatie, organisatie_known(ctx.landscape))
    if message:
        field = {"field": "config.location", "message": message}
        raise ProblemError(403, "Forbidden", message, errors=[field])
