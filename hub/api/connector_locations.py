"""Where a connector may read from: a URL outside blocked networks (the SSRF guard), or a
local path under ``KOPPELHUB_CONNECTORS_FILE_ROOTS`` that is not in another organisation's
folder."""

from __future__ import annotations

from pathlib import Path

from connectors.sources import is_url
from hub.api.context import ApiContext
from hub.api.problems import ProblemError
from subscriptions.ssrf import NetworkPolicy, SinkRefused, check_sink

__all__ = ["check_folder_owner", "check_location", "check_url"]


def _under(path: Path, roots: list[Path]) -> bool:
    if "\0" in str(path):  # no file has one; resolve() would raise
        return False
    return path.is_absolute() and any(path.resolve().is_relative_to(r) for r in roots)


async def check_url(url: str, ctx: ApiContext, field: str = "config.url") -> None:
    try:
        await check_sink(url, NetworkPolicy.parse(ctx.settings.connectors.allow_networks))
    except SinkRefused as e:
        raise ProblemError(400, "URL refused", str(e), errors=[{"field": field, "message": str(e)}]) from e


async def check_location(location: str, ctx: ApiContext) -> None:
    c = ctx.settings.connectors
    if is_url(location):
        try:
            await check_sink(location, NetworkPolicy.parse(c.allow_networks))
        except SinkRefused as e:
            raise ProblemError(
                400, "Location refused", str(e), errors=[{"field": "config.location", "message": str(e)}]
            ) from e
        return
    roots = [r.resolve() for r in c.file_roots]
    if not _under(Path(location), roots):
        message = (
            "must be an http(s) URL or an absolute path under KOPPELHUB_CONNECTORS_FILE_ROOTS "
            f"({', '.join(map(str, roots)) or 'none configured'})"
        )
        raise ProblemError(
            400, "Location refused", message, errors=[{"field": "config.location", "message": message}]
        )


def _folders(location: str, roots: list[Path]) -> list[tuple[Path, str]]:
    """For a local path: each root it lies under, with the folder directly below that root
    it lies in (none for a file directly in a root, or for a URL)."""
    if is_url(location) or "\0" in location:
        return []
    path = Path(location).resolve()
    return [
        (root, path.relative_to(root).parts[0])
        for root in (r.resolve() for r in roots)
        if path.is_relative_to(root) and len(path.relative_to(root).parts) > 1
    ]


async def check_folder_owner(location: str, organisatie: str, ctx: ApiContext) -> None:
    """403 when a local ``location`` lies in another organisation's folder: a folder directly
    under a file root named after an organisation the hub knows holds that organisation's
    files, which a connector of another organisation may not read (its run's row errors would
    show their content to that organisation). Files elsewhere under the roots are shared."""
    for root, folder in _folders(location, ctx.settings.connectors.file_roots):
        if folder != organisatie and await ctx.landscape.get("organisatie", folder) is not None:
            message = (
                f"{root / folder} holds organisation {folder}'s files; a connector of {organisatie} "
                f"reads its own folder ({root / organisatie}) or files outside organisations' folders"
            )
            raise ProblemError(
                403, "Forbidden", message, errors=[{"field": "config.location", "message": message}]
            )
