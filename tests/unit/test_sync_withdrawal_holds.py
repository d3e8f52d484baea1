"""A full run withdraws what its source no longer holds, never what it could not read
(hub/services/sync.py): an invalid row keeps the object it names, and an invalid row that names
no object keeps them all. The csv connector against the in-memory fingerprint store."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

from connectors.base import ConnectorContext
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports.connectors import Owner, SyncScope
from hub.services.sync import SyncRun
from hub.services.sync_rows import Tally
from schemas.bindings import from_kafka_record

ORG = "org-1"
SCOPE = SyncScope("urn:nl:koppelhub:test:import:org-1", ORG, "import:org-1")
HEADER = ["id", "afnemer", "applicatie", "status"]
GOOD = [[f"g-{i}", ORG, f"app-{i}", "In productie"] for i in range(4)]


class Imports:
    """Full imports of CSV files into one scope, one fingerprint store, one log."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir, self.n = tmp_path, 0
        self.store = InMemoryFingerprintStore(InMemoryConnectorTables())
        self.log = InMemoryEventLog()

    async def run(self, rows: list[list[str]]) -> Tally:
        self.n += 1
        path = self.dir / f"{self.n}.csv"
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([HEADER, *rows])
        ctx = ConnectorContext(ORG, SCOPE.key, self.dir, file_roots=(self.dir,))
        connector = create("csv", {"location": str(path), "objecttype": "gebruik", "mode": "full"}, ctx)
        run = SyncRun(connector, SCOPE, Owner("import", uuid.uuid4()), self.store, self.log)
        return await run.execute(None)

    def published(self, object_id: str) -> list[dict[str, object]]:
        """The data of every ``vastgelegd`` event published for ``object_id``, in order."""
        events = [from_kafka_record(r.key, r.value, r.headers) for p in self.log.partitions for r in p]
        return [e.data for e in events if e.subject == object_id and e.type.endswith(".vastgelegd.v1")]

    def withdrawn(self) -> list[str]:
        events = [from_kafka_record(r.key, r.value, r.headers) for p in self.log.partitions for r in p]
        return sorted(e.subject or "" for e in events if e.type.endswith(".ingetrokken.v1"))


async def test_a_row_made_invalid_keeps_its_object_and_a_row_left_out_is_withdrawn(tmp_path: Path) -> None:
    imports = Imports(tmp_path)
    await imports.run(GOOD)
    typo = [r[:] for r in GOOD[:3]]
    typo[1][3] = "in productie"  # g-1: a typo; g-3: left out of the file

    tally = await imports.run(typo)

    assert (tally.read, tally.invalid, tally.withdrawn) == (3, 1, 1)
    assert imports.withdrawn() == ["g-3"]


async def test_an_invalid_row_without_an_id_keeps_every_object_and_says_why(tmp_path: Path) -> None:
    imports = Imports(tmp_path)
    await imports.run(GOOD)
    no_id = [["", ORG, "app-1", "In productie"], *GOOD[2:]]  # g-0, g-1 gone, or row 2?

    tally = await imports.run(no_id)

    assert (tally.read, tally.invalid, tally.withdrawn) == (3, 1, 0)
    assert imports.withdrawn() == []
    assert tally.notes == ["row 2 could not be read as an object (see the errors), so nothing was withdrawn: "
                           "correct it and run again"]  # fmt: skip
