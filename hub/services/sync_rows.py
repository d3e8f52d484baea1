"""What a run counts, and the row checks that need a batch's view rather than a record's
(:mod:`hub.services.sync` runs them): :class:`Tally` and :func:`repeated`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Rejected
from connectors.mapping import MappedObject
from hub.ports.connectors import Key, RowError

__all__ = ["SAMPLE_ERRORS", "Interrupted", "Progress", "Tally", "repeated"]

#: Row errors a run keeps on its record as samples (the first few); all go to the row report.
SAMPLE_ERRORS = 20


@dataclass
class Tally:
    """Counts of one run: totals and, per object type, found/created/updated/unchanged/removed."""

    read: int = 0
    published: int = 0
    unchanged: int = 0
    invalid: int = 0
    withdrawn: int = 0
    per_type: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sample_errors: list[dict[str, Any]] = field(default_factory=list)  # the first few, for status views

    def reject(self, row: int | None, problems: list[tuple[str, str]]) -> list[RowError]:
        """Count one invalid record; its problems as row errors, the first few kept as samples."""
        self.invalid += 1
        found = [RowError(row, column, message) for column, message in problems]
        for err in found[: max(0, SAMPLE_ERRORS - len(self.sample_errors))]:
            self.sample_errors.append({"row": err.row, "column": err.column, "message": err.message})
        return found

    def unreadable(self, rejected: tuple[Rejected, ...]) -> list[RowError]:
        """Count what a source listed that is not a record (:attr:`Batch.rejected`) as read and
        invalid; its problems as row errors."""
        self.read += len(rejected)
        return [e for r in rejected for e in self.reject(r.row, r.problems)]

    def bump(self, objecttype: str, what: str, n: int = 1) -> None:
        row = self.per_type.setdefault(
            objecttype, {"found": 0, "created": 0, "updated": 0, "unchanged": 0, "removed": 0}
        )
        row[what] += n

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "published": self.published,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "withdrawn": self.withdrawn,
        }


Progress = Callable[[Tally], None]


class Interrupted(Exception):
    """Raised by a progress hook when the process is stopping: the run ends at a batch boundary
    (everything committed so far stays)."""


def repeated(
    mapped: list[MappedObject],
    objects: dict[Key, MappedObject],
    unchanged: dict[Key, int | None],
    rows: dict[Key, int | None],
) -> list[tuple[str, str]]:
    """The problems of a record that gives an object another record of its batch gave already,
    with other content (a file with an id twice), instead of a silent overwrite: the row the hub
    already holds (unchanged) is kept, else the first. The same object given twice alike is no
    problem."""
    problems = []
    for objecttype, object_id, digest, _ in mapped:
        key = (objecttype, object_id)
        before = objects.get(key)
        if key in unchanged or (before is not None and before[2] != digest):
            row = rows.get(key)
            where = (
                f"row {row}" if row is not None else "another row" if key in unchanged else "another record"
            )
            kept = "as the hub holds it" if key in unchanged else "the first"
            message = (
                f"{objecttype} {object_id!r} is on {where} too, with other content; that one is kept ({kept})"
            )
            problems.append(("id", message))
    return problems
