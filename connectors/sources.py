"""Where a file connector reads from: a local path under an allowed root, or an http(s) URL.

URLs are downloaded with :func:`connectors.client.connector_client`, which connects only to
addresses the SSRF guard checked (the transport ``ConnectorContext.egress`` the hub injects,
with the rule the webhook sender uses), never redirected, into the work dir with a size limit
while their SHA-256 is computed, so a file that did not change can be skipped. Errors name the
URL and the status, never what the server answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from connectors.base import ConnectorContext, SourceRefused, SourceUnavailable
from connectors.client import connector_client

__all__ = ["LocalFile", "fetch_configured", "fetch_location", "foreign_folder", "is_url", "within"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    """A readable local copy of the source; ``temporary`` copies are deleted after the run."""

    path: Path
    sha256: str
    size: int
    temporary: bool = False

    def discard(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def within(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path`` is an absolute path inside one of ``roots`` (links and ``..`` resolved)."""
    if not path.is_absolute() or "\0" in str(path):  # no file has a NUL; resolve() would raise
        return False
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


def _hash_file(path: Path, limit: int) -> LocalFile:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise SourceRefused(f"{path.name} is larger than the limit of {limit} bytes")
            digest.update(chunk)
    return LocalFile(path, digest.hexdigest(), size)


async def fetch_location(
    location: str, ctx: ConnectorContext, roots: Sequence[Path], *, authorization: str | None = None
) -> LocalFile:
    """A local, hashed copy of ``location`` (a path under ``roots`` or an http(s) URL, fetched
    with ``authorization`` as its Authorization header)."""
    if is_url(location):
        return await _download(location, ctx, authorization)
    path = Path(location)
    if not within(path, roots):
        allowed = ", ".join(str(r) for r in roots) or "none configured"
        raise SourceRefused(f"{location!r} is not a file under an allowed directory ({allowed})")
    return await asyncio.to_thread(_local_file, path, ctx.max_bytes)


async def fetch_configured(
    location: str, authorization: SecretStr | None, ctx: ConnectorContext
) -> LocalFile:
    """:func:`fetch_location` for a connector config's ``location`` and write-only
    ``authorization``, within the context's allowed file roots and outside other
    organisations' folders (:func:`foreign_folder`)."""
    if ctx.is_organisatie is not None:
        refused = await foreign_folder(location, ctx.file_roots, ctx.organisatie, ctx.is_organisatie)
        if refused:
            raise SourceRefused(refused)
    token = authorization.get_secret_value() if authorization else None
    return await fetch_location(location, ctx, ctx.file_roots, authorization=token)


async def foreign_folder(
    location: str, roots: Sequence[Path], organisatie: str, is_organisatie: Callable[[str], Awaitable[bool]]
) -> str | None:
    """Why ``organisatie``'s connector may not read the local ``location``, or ``None``: the
    file roots are shared, so a folder directly under one named after an organisation the hub
    knows holds that organisation's files, which another organisation's connector may not
    read (its row errors would show their content). Files elsewhere under the roots are shared."""
    if is_url(location) or "\0" in location:
        return None
    path = await asyncio.to_thread(Path(location).resolve)
    for root in roots:
        root = await asyncio.to_thread(root.resolve)
        parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
        if len(parts) > 1 and parts[0] != organisatie and await is_organisatie(parts[0]):
            return (
                f"{root / parts[0]} holds organisation {parts[0]}'s files; a connector of {organisatie} "
                f"reads its own folder ({root / organisatie}) or files outside organisations' folders"
            )
    return None


def _local_file(path: Path, limit: int) -> LocalFile:
    if not path.is_file():
        raise SourceUnavailable(f"{path} does not exist or is not a file")
    return _hash_file(path, limit)


def _failure(e: httpx.HTTPError) -> str:
    """What went wrong, without anything the server sent: protocol and decoding errors quote
    the bytes they could not parse (h11: ``illegal status line: b'...'``), so they are named
    only; connection and timeout errors come from this side and keep their message."""
    if isinstance(e, httpx.ProtocolError | httpx.DecodingError) or not str(e):
        return type(e).__name__
    return f"{type(e).__name__}: {e}"


async def _download(url: str, ctx: ConnectorContext, authorization: str | None) -> LocalFile:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=ctx.work_dir, prefix="download-")
    headers = {"Authorization": authorization} if authorization else {}
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            async with (
                connector_client(ctx) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code != 200:  # redirects included: they are not followed
                    raise SourceUnavailable(f"GET {url} answered {response.status_code}")
                async for chunk in response.aiter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > ctx.max_bytes:
                        raise SourceRefused(f"{url} is larger than the limit of {ctx.max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as e:
        os.unlink(name)
        raise SourceUnavailable(f"cannot download {url}: {_failure(e)}") from e
    except BaseException:
        os.unlink(name)
        raise
    return LocalFile(Path(name), digest.hexdigest(), size, temporary=True)
