"""Full AMEFF imports through the real runner (:class:`hub.services.sync.SyncRun`) against the
in-memory fingerprint store and log: what the file holds is published, what it cannot say is
reported as a row error, and nothing is withdrawn for what could not be read."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from pathlib import Path

from connectors.ameff.export import export_ameff
from connectors.base import ConnectorContext
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.landschap import Landschap
from connectors.registry import create
from hub.adapters.memory import InMemoryConnectorTables, InMemoryEventLog, InMemoryFingerprintStore
from hub.ports.connectors import BatchCommit, Owner, RowError, SyncScope
from hub.ports.landscape import ObjectKey
from hub.services.ownership import Owners
from hub.services.sync import SyncRun
from hub.services.sync_rows import Tally
from schemas import CloudEvent
from schemas.bindings import from_kafka_record
from schemas.landscape import Applicatie, Gebruik, Koppeling

ORG = "org-1"
SCOPE = SyncScope("urn:nl:koppelhub:test:import:org-1/ameff", ORG, "import:org-1/ameff")
ARCHIMATE = "http://www.opengroup.org/xsd/archimate/3.0/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def default_ns(target: str = "b") -> str:
    """Two components and a flow between them, in the default namespace (as Archi writes it)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<model xmlns="{ARCHIMATE}" xmlns:xsi="{XSI}" '
        'identifier="m">'
        '<elements><element identifier="a" xsi:type="ApplicationComponent"><name>A</name></element>'
        '<element identifier="b" xsi:type="ApplicationComponent"><name>B</name></element></elements>'
        f'<relationships><relationship identifier="r1" source="a" target="{target}" xsi:type="Flow"/>'
        "</relationships></model>"
    )


def prefixed(prefix: str = "am", uri: str = ARCHIMATE) -> str:
    """The model of :func:`default_ns` with the ArchiMate namespace under a prefix; the types in
    ``uri`` under ``prefix`` (the ArchiMate namespace itself unless told)."""
    types = f' xmlns:t="{uri}"' if uri != ARCHIMATE else ""
    t, p = ("t" if types else prefix), prefix

    def component(ident: str, name: str) -> str:
        kind = f"{t}:ApplicationComponent"
        return (
            f'<{p}:element identifier="{ident}" xsi:type="{kind}"><{p}:name>{name}</{p}:name></{p}:element>'
        )

    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{p}:model xmlns:{p}="{ARCHIMATE}" '
        f'xmlns:xsi="{XSI}"{types} identifier="m">'
        f"<{p}:elements>{component('a', 'A')}{component('b', 'B')}</{p}:elements><{p}:relationships>"
        f'<{p}:relationship identifier="r1" source="a" target="b" xsi:type="{t}:Flow"/>'
        f"</{p}:relationships></{p}:model>"
    )


class ReportingStore(InMemoryFingerprintStore):
    """The in-memory store, keeping the row errors of every commit (the import's row report)."""

    def __init__(self) -> None:
        super().__init__(InMemoryConnectorTables())
        self.errors: list[RowError] = []

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        self.errors += batch.errors
        await super().commit(scope, owner, batch)


class Imports:
    """Full AMEFF imports for one organisation into one scope, fingerprint store and log."""

    def __init__(self, tmp_path: Path, owners: Owners | None = None) -> None:
        self.dir, self.n, self.owners = tmp_path, 0, owners
        self.store = ReportingStore()
        self.log = InMemoryEventLog()
        self.errors: list[RowError] = []  # the last run's

    async def run(self, xml: str | bytes) -> Tally:
        self.n += 1
        path = self.dir / f"{self.n}.xml"
        path.write_bytes(xml.encode() if isinstance(xml, str) else xml)
        ctx = ConnectorContext(ORG, SCOPE.key, self.dir, file_roots=(self.dir,))
        connector = create("ameff", {"location": str(path)}, ctx)
        owner = Owner("import", uuid.uuid4())
        self.store.errors = []
        run = SyncRun(connector, SCOPE, owner, self.store, self.log, owners=self.owners)
        tally = await run.execute(None)
        self.errors = self.store.errors
        return tally

    def events(self) -> list[CloudEvent]:
        return [from_kafka_record(r.key, r.value, r.headers) for p in self.log.partitions for r in p]

    def withdrawn(self) -> list[str]:
        return sorted(e.subject or "" for e in self.events() if e.type.endswith(".ingetrokken.v1"))


async def test_a_prefixed_archimate_namespace_reads_as_the_default_one_and_withdraws_nothing(
    tmp_path: Path,
) -> None:
    imports = Imports(tmp_path)
    await imports.run(default_ns())

    tally = await imports.run(prefixed())

    assert (tally.read, tally.unchanged, tally.invalid, tally.withdrawn) == (3, 5, 0, 0)
    assert imports.withdrawn() == []


async def test_types_in_another_namespace_are_reported_and_the_unreadable_file_withdraws_nothing(
    tmp_path: Path,
) -> None:
    imports = Imports(tmp_path)
    await imports.run(default_ns())

    tally = await imports.run(prefixed(uri="urn:example:not-archimate"))

    assert (tally.read, tally.invalid, tally.published, tally.withdrawn) == (3, 3, 0, 0)
    assert imports.withdrawn() == []
    assert {e.column for e in imports.errors} == {"element a", "element b", "relationship r1"}
    assert all("not an ArchiMate type" in e.message for e in imports.errors)


async def test_a_model_without_components_is_reported_and_withdraws_nothing(tmp_path: Path) -> None:
    imports = Imports(tmp_path)
    await imports.run(default_ns())
    actors = default_ns().replace("ApplicationComponent", "BusinessActor")

    tally = await imports.run(actors)

    assert (tally.invalid, tally.withdrawn) == (1, 0)
    assert imports.withdrawn() == []
    [error] = imports.errors
    assert error.column == "model"
    assert "no ApplicationComponent, only 2 BusinessActor, 1 Flow" in error.message


async def test_a_relationship_to_an_unknown_element_is_a_row_error_and_keeps_its_koppeling(
    tmp_path: Path,
) -> None:
    imports = Imports(tmp_path)
    await imports.run(default_ns())

    tally = await imports.run(default_ns(target="B"))  # a typo: the element is "b"

    assert (tally.invalid, tally.withdrawn) == (1, 0)
    assert imports.withdrawn() == []
    assert [(e.column, e.message) for e in imports.errors] == [
        ("relationship r1", "target 'B' is not an element of the model")
    ]


async def test_an_export_imported_by_another_organisation_uses_the_applicaties_it_does_not_own(
    tmp_path: Path,
) -> None:
    zaak = Applicatie(id="app-zaak", naam="Zaaksysteem", aanbieder="leverancier-x")
    dms = Applicatie(id="app-dms", naam="DMS")  # nobody's: an import may record it
    exported = Landschap(
        "org-0",
        gebruik=[
            Gebruik(id="g-1", afnemer="org-0", applicatie="app-zaak", status="In productie"),
            Gebruik(id="g-2", afnemer="org-0", applicatie="app-dms", status="Gepland"),
        ],
        applicaties=[zaak, dms],
        koppelingen=[
            Koppeling(
                id="k-1", applicatieA="app-zaak", applicatieB="app-dms", type="api", organisatie="org-0"
            )
        ],
    )

    async def owners(keys: Collection[ObjectKey]) -> dict[ObjectKey, str | None]:
        stored = {("applicatie", "app-zaak"): "leverancier-x", ("applicatie", "app-dms"): None}
        return {k: stored[k] for k in keys if k in stored}

    imports = Imports(tmp_path, owners)

    tally = await imports.run(export_ameff(exported))

    assert (tally.invalid, tally.published) == (0, 4), imports.errors
    recorded = {(e.type.split(".")[2], e.subject) for e in imports.events()}
    assert ("applicatie", "app-zaak") not in recorded and ("applicatie", "app-dms") in recorded
    usage = [e.data for e in imports.events() if e.type.split(".")[2] == "gebruik"]
    assert sorted((g["afnemer"], g["applicatie"]) for g in usage) == [(ORG, "app-dms"), (ORG, "app-zaak")]
