"""``GET /api/v1/organisaties/{id}/landschap?format=ameff|csv|xlsx``: the landscape as a file.

The read store's :class:`hub.ports.Landschap` becomes the exports' input
(:class:`connectors.landschap.Landschap`): the organisation's gebruik, every applicatie its
gebruik and koppelingen refer to that is known, its koppelingen, and the
referentiecomponenten the applicaties name. Private fields go along only for callers who may
see them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi.responses import Response

from connectors.ameff.export import export_ameff
from connectors.landschap import Landschap as ExportLandschap
from connectors.tabular.export import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    export_gebruik_csv,
    export_gebruik_xlsx,
)
from hub.ports import LandscapeReader, Landschap, StoredObject
from hub.services.landscape import public_state
from schemas.landscape import Applicatie, Gebruik, Koppeling, Referentiecomponent

#: format → (media type, file extension, exporter)
FORMATS: Final[dict[str, tuple[str, str, Callable[[ExportLandschap], bytes]]]] = {
    "ameff": ("application/xml", "xml", export_ameff),
    "csv": (CSV_MEDIA_TYPE, "csv", export_gebruik_csv),
    "xlsx": (XLSX_MEDIA_TYPE, "xlsx", export_gebruik_xlsx),
}


async def export_landschap(
    reader: LandscapeReader, organisatie: str, found: Landschap, fmt: str, *, private: bool
) -> Response:
    """The file of ``fmt`` for ``found``; ``private``: include the afnemer's private fields."""

    def state(obj: StoredObject) -> dict[str, Any]:
        return dict(obj.state) if private else public_state(obj)

    applicaties = {a.id: a for _, a in found.gebruik if a is not None}
    linked = {k.state[side] for k in found.koppelingen for side in ("applicatieA", "applicatieB")}
    for missing in sorted(i for i in linked - applicaties.keys() if i):
        if (obj := await reader.get("applicatie", missing)) is not None:
            applicaties[missing] = obj
    named = sorted({rc for a in applicaties.values() for rc in a.state["referentiecomponenten"]})
    components = [obj for rc in named if (obj := await reader.get("referentiecomponent", rc)) is not None]
    landschap = ExportLandschap(
        organisatie=organisatie,
        gebruik=[Gebruik.model_validate(state(g)) for g, _ in found.gebruik],
        applicaties=[Applicatie.model_validate(state(a)) for a in applicaties.values()],
        koppelingen=[Koppeling.model_validate(state(k)) for k in found.koppelingen],
        referentiecomponenten=[Referentiecomponent.model_validate(state(c)) for c in components],
    )
    media_type, extension, exporter = FORMATS[fmt]
    filename = f"landschap-{''.join(c if c.isalnum() or c in '-_' else '_' for c in organisatie)}.{extension}"
    return Response(
        exporter(landschap),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
