"""Where file connectors read from: URLs without redirects and with a size limit
(``httpx.MockTransport``, no network), local paths only under the allowed roots. The SSRF guard
of URLs: tests/unit/test_connector_client.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.base import ConnectorContext, SourceRefused, SourceUnavailable
from connectors.sources import fetch_location


def context(tmp_path: Path, handler: object = None, **extra: object) -> ConnectorContext:
    transport = httpx.MockTransport(handler) if handler else None  # type: ignore[arg-type]
    return ConnectorContext(
        organisatie="org-1",
        scope="s",
        work_dir=tmp_path / "work",
        http_transport=transport,
        **extra,  # type: ignore[arg-type]
    )


async def test_a_url_is_downloaded_hashed_and_discarded_after_use(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, content=b"id,naam\na,b\n")

    ctx = context(tmp_path, handler)
    local = await fetch_location("https://bron.example/app.csv", ctx, (), authorization="Bearer x")

    assert local.path.read_bytes() == b"id,naam\na,b\n" and local.size == 12 and len(local.sha256) == 64
    assert seen == ["Bearer x"]
    local.discard()
    assert not local.path.exists()


async def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/"})

    with pytest.raises(SourceUnavailable, match="answered 302"):
        await fetch_location("https://bron.example/x.csv", context(tmp_path, handler), ())
    assert list((tmp_path / "work").iterdir()) == []


async def test_a_download_over_the_limit_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5000)

    with pytest.raises(SourceRefused, match="larger than the limit"):
        await fetch_location("https://bron.example/x.csv", context(tmp_path, handler, max_bytes=1024), ())
    assert list((tmp_path / "work").iterdir()) == []


async def test_local_paths_only_under_an_allowed_root(tmp_path: Path) -> None:
    root = tmp_path / "bronnen"
    root.mkdir()
    (root / "a.csv").write_text("id\n")
    ctx = context(tmp_path)

    assert (await fetch_location(str(root / "a.csv"), ctx, (root,))).size == 3
    for outside in ("/etc/passwd", str(root / ".." / "x.csv"), "a.csv"):
        with pytest.raises(SourceRefused, match="not a file under an allowed directory"):
            await fetch_location(outside, ctx, (root,))
    with pytest.raises(SourceUnavailable):
        await fetch_location(str(root / "missing.csv"), ctx, (root,))
