"""Conditional reads of publiccode.yml files: a run over unchanged files parses none of them.

Each file that yielded an applicatie is kept in the connector's checkpoint with the validators
its server answered (``ETag``, ``Last-Modified``; RFC 9110 §8.8) and the applicatie's id. The
next run sends them back (``If-None-Match``, ``If-Modified-Since``, §13.1), and a ``304 Not
Modified`` is that file unchanged: not parsed, nothing published for it, its applicatie
``present`` (never withdrawn for it), and its run errors (unmatched ``usedBy`` names) not
reported again. A file without an applicatie (invalid, a fork) keeps no validators, so it is read
and reported every run. The validators hold only while what a file maps to does: when the
landscape's municipalities, the aliases, the known organisations, the aanbieder type or the size
limit change (their digest is kept with the validators), every file is read whole again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Validators"]

#: One file's entry: its ETag, its Last-Modified and the id of its applicatie.
Entry = list[str | None]


@dataclass
class Validators:
    """The validators of the last run (``before``) and of this one (``now``, the next checkpoint)."""

    matching: str
    before: Mapping[str, Entry] = field(default_factory=dict)
    now: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def of(cls, checkpoint: Mapping[str, Any] | None, matching: str) -> Validators:
        """This run's, from the last run's checkpoint: none when the matching changed since."""
        kept = (checkpoint or {}).get("validators")
        if not isinstance(kept, dict) or (checkpoint or {}).get("matching") != matching:
            return cls(matching)
        return cls(matching, {u: e for u, e in kept.items() if isinstance(e, list) and len(e) == 3})

    def headers(self, url: str) -> dict[str, str]:
        """The conditional request headers for ``url`` (none when it has no validators)."""
        entry = self.before.get(url)
        if entry is None:
            return {}
        etag, modified, _ = entry
        found = {"If-None-Match": etag, "If-Modified-Since": modified}
        return {k: v for k, v in found.items() if v}

    def unchanged(self, url: str) -> str | None:
        """After a 304 for ``url``: its applicatie's id (kept for the next run); None if unknown."""
        entry = self.before.get(url)
        if entry is None or not entry[2]:
            return None
        self.now[url] = entry
        return entry[2]

    def remember(self, url: str, response: httpx.Response, applicatie: str) -> None:
        """``url`` answered 200 and yielded ``applicatie``: keep the validators it answered."""
        etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
        if etag or modified:
            self.now[url] = [etag, modified, applicatie]

    def checkpoint(self) -> dict[str, Any]:
        return {"matching": self.matching, "validators": self.now}
