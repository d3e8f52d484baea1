"""The audit trail is append-only (issue 12): the port offers appending, reading and the
retention cleanup and nothing else; the API only reads it, and any other method on
``/api/v1/audit`` is a 405 problem; no SQL outside the retention removes or changes an entry."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import httpx

from hub.ports.audit import AuditLog
from tests.support.memory_app import MemoryApp

HUB = Path(__file__).resolve().parents[3] / "hub"


def test_the_audit_port_appends_reads_and_cleans_up_only() -> None:
    members = {n for n, _ in inspect.getmembers(AuditLog, inspect.isfunction) if not n.startswith("_")}
    assert members == {"record", "list", "cleanup"}


def test_only_the_retention_deletes_from_the_audit_table_and_nothing_updates_it() -> None:
    writers = []
    for path in HUB.rglob("*.py"):
        text = path.read_text()
        if re.search(r"(delete|update)\(\s*audit_log\b", text) or re.search(
            r"(DELETE FROM|UPDATE)\s+audit_log", text
        ):
            writers.append(path.relative_to(HUB).as_posix())
    assert writers == ["adapters/postgres/audit.py"]  # its cleanup(), KOPPELHUB_AUDIT_RETENTION_DAYS


async def test_the_api_reads_the_trail_and_refuses_to_change_it(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    client: httpx.AsyncClient = memory.client
    for method in ("DELETE", "PUT", "PATCH", "POST"):
        response = await client.request(method, "/api/v1/audit", headers=auth)
        assert response.status_code == 405, (method, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
