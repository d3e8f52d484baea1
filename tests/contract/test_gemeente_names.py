"""The landscape's municipalities by exact name, as the publiccode connector matches ``usedBy``
(``hub.services.connectors.gemeente_names``), on the in-memory and the PostgreSQL store."""

from __future__ import annotations

from hub.services.connectors import gemeente_names
from tests.contract.conftest import Harness, vastgelegd


async def test_each_gemeente_is_found_by_its_exact_name_and_a_shared_name_matches_none(
    landscape: Harness,
) -> None:
    await landscape.apply(
        vastgelegd("organisatie", {"id": "gm0344", "naam": "Gemeente Utrecht", "type": "Gemeente"}),
        vastgelegd("organisatie", {"id": "gm0363", "naam": "Gemeente Amsterdam", "type": "Gemeente"}),
        vastgelegd("organisatie", {"id": "gm-a", "naam": "Gemeente Bergen", "type": "Gemeente"}),
        vastgelegd("organisatie", {"id": "gm-b", "naam": "Gemeente Bergen", "type": "Gemeente"}),
        vastgelegd("organisatie", {"id": "lev-1", "naam": "Maykin Media", "type": "Leverancier"}),
    )

    names = await gemeente_names(landscape.reader)()

    assert names == {"Gemeente Utrecht": "gm0344", "Gemeente Amsterdam": "gm0363"}
