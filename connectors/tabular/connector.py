"""Connector kinds ``csv`` and ``excel``: a file of one landscape object type, read on a schedule.

The checkpoint is the file's SHA-256 and the last row published: an unchanged file is
skipped, and an incremental run that stopped half-way resumes after that row. A ``full`` run
always reads the whole file (what disappeared can only be known from all of it).

The file is read in a worker thread, a batch of rows at a time, within the context's
:class:`~connectors.base.ImportLimits`: the event loop (API, projector, dispatcher in the same
process) never waits on a spreadsheet.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from functools import partial
from hashlib import sha256
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.base import Batch, Change, Connector, Record, SourceRefused
from connectors.registry import register
from connectors.sources import fetch_configured
from connectors.tabular.columns import (
    column_plan,
    columns,
    header_index,
    header_shape,
    list_fields,
    row_object,
)
from connectors.tabular.export import template_xlsx
from connectors.tabular.reader import Row, read_rows
from schemas.landscape import OBJECT_TYPES

__all__ = ["CsvConfig", "CsvConnector", "ExcelConfig", "ExcelConnector"]

ObjectType = Literal["organisatie", "applicatie", "gebruik", "koppeling", "referentiecomponent", "standaard"]


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="An absolute path under an allowed directory, or an http(s) URL.")
    objecttype: ObjectType = Field(description="The landscape object type every row is.")
    mode: Literal["incremental", "full"] = Field(
        "incremental", description="full: rows that disappeared since the last full read are withdrawn."
    )
    authorization: SecretStr | None = Field(
        None, description="Authorization header for an http(s) location (write-only)."
    )

    @field_validator("location")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a path or URL")
        return value.strip()


class CsvConfig(FileConfig):
    delimiter: Literal[",", ";"] | None = Field(None, description="Unset: detected from the header.")


class ExcelConfig(FileConfig):
    sheet: str | None = Field(None, description="Worksheet name; unset: the first sheet.")


class _TabularConnector(Connector[Any]):
    excel: ClassVar[bool]

    def _rows(self, path: Path) -> Generator[Row]:
        cfg = self.config
        return read_rows(
            path,
            excel=self.excel,
            sheet=getattr(cfg, "sheet", None),
            delimiter=getattr(cfg, "delimiter", None),
            limits=self.context.limits,
        )

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        local = await fetch_configured(self.config.location, self.config.authorization, self.context)
        try:
            same = checkpoint is not None and checkpoint.get("sha256") == local.sha256
            if same and checkpoint and checkpoint.get("complete"):
                yield Batch([], dict(checkpoint))  # this exact file was read to the end already
                return
            skip = int(checkpoint.get("row", 0)) if same and checkpoint and not self.full else 0
            rows = self._rows(local.path)
            try:
                first = await asyncio.to_thread(next, rows, None)
                if first is None:
                    raise SourceRefused("the file is empty: it needs a header row with the column names")
                index = header_index(self.config.objecttype, first[1])
                # The header and the organisation are part of every row's fingerprint.
                shared = {
                    "index": index,
                    "plan": column_plan(index, _LISTS[self.config.objecttype]),
                    "shape": header_shape(index),
                    "signature": "\x1f".join([self.context.organisatie, *index]),
                    "max_cell_bytes": self.context.limits.max_cell_bytes,
                }
                last = first[0]
                done = False
                while not done:
                    chunk = await asyncio.to_thread(_take, rows, self.batch_size)
                    last = chunk[-1][0] if chunk else last
                    records = [Record({"shared": shared, "cells": c}, n) for n, c in chunk if n > skip]
                    done = len(chunk) < self.batch_size
                    yield Batch(
                        records, {"sha256": local.sha256, "row": last, "complete": done}, complete=done
                    )
            finally:
                with contextlib.suppress(ValueError):  # still running in its thread: collected later
                    rows.close()
        finally:
            local.discard()

    def withdrawable_types(self) -> frozenset[str] | None:
        return frozenset({self.config.objecttype})

    def fingerprint(self, record: Record) -> tuple[str, str, str] | None:
        """The row as the file has it: its cells (trimmed) under this header, for this organisation.

        Runs once per row of every import, unchanged rows included (then it is most of the
        work): the cells are trimmed with one ``map`` when none is empty (a CSV cell is never
        None; an xlsx one may be), and the digest is as it always was, so fingerprints stored
        by earlier imports still match."""
        shared = record.data["shared"]
        cells = record.data["cells"]
        position = shared["index"].get("id", len(cells))
        object_id = (cells[position] or "").strip() if position < len(cells) else ""
        if not object_id:
            return None
        try:
            text = "\x1f".join(map(str.strip, cells))
        except TypeError:  # an empty xlsx cell
            text = "\x1f".join([(c or "").strip() for c in cells])
        digest = sha256(f"{shared['signature']}\x1e{text}".encode()).hexdigest()[:32]
        return self.config.objecttype, object_id, digest

    def map(self, record: Record) -> list[Change]:
        return map_row(self.config.objecttype, self.context.organisatie, record)

    @classmethod
    def records(cls, config: BaseModel) -> frozenset[str]:
        return frozenset({config.objecttype}) if isinstance(config, FileConfig) else frozenset()

    def mapper(self) -> Callable[[Record], list[Change]] | None:
        return partial(map_row, self.config.objecttype, self.context.organisatie)


def _take(rows: Iterator[Row], n: int) -> list[Row]:
    """The next ``n`` rows (fewer at the end), read in the calling (worker) thread."""
    return list(islice(rows, n))


_LISTS = {t: list_fields(t) for t in OBJECT_TYPES}


def map_row(objecttype: str, organisatie: str, record: Record) -> list[Change]:
    """A row as its object (module level, so a worker process can run it)."""
    shared = record.data["shared"]
    obj = row_object(
        objecttype,
        shared["index"],
        _LISTS[objecttype],
        record.data["cells"],
        organisatie,
        max_cell_bytes=shared.get("max_cell_bytes"),
        plan=shared.get("plan"),
        shape=shared.get("shape"),
    )
    return [Change(obj)]


@register
class CsvConnector(_TabularConnector):
    """Rows of a CSV file (UTF-8, ``,`` or ``;``)."""

    name = "csv"
    source = "CSV file (path or URL)"
    config_model = CsvConfig
    excel = False

    def mapper(self) -> Callable[[Record], list[Change]] | None:
        """None: CSV rows are mapped in the runner's process, never in the mapping worker.

        Measured on 100,000 rows (benchmarks/imports.py): handing a batch of CSV rows to the
        worker and its objects back cost the import process about as much CPU as mapping them
        (pickling ~12 µs per row against ~7 µs to map), and the worker ~30 µs per row more, plus
        a second interpreter of ~145 MB; in this process the import takes ~48 instead of ~78 µs
        of CPU per row and ~180 instead of ~330 MB. Excel imports (not measured that way: reading
        the xlsx dominates them) keep mapping large batches in the worker."""
        return None

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        path = directory / "gebruik.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter=";")
            writer.writerow(columns("gebruik"))
            for i in range(3):
                writer.writerow([f"g-{i}", "org-1", f"app-{i}", "In productie", "1.0", "rc-1|rc-2", ""])
        return {"location": str(path), "objecttype": "gebruik", "mode": "full"}


@register
class ExcelConnector(_TabularConnector):
    """Rows of the first or a named sheet of an xlsx workbook."""

    name = "excel"
    source = "Excel workbook (path or URL)"
    config_model = ExcelConfig
    excel = True

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        path = directory / "applicatie.xlsx"
        path.write_bytes(template_xlsx("applicatie"))
        return {"location": str(path), "objecttype": "applicatie"}
