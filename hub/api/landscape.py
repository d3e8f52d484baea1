"""The read API of the landscape: collections, single objects and an organisation's landschap.

Items carry the object's fields (as in the register) and ``provenance``: which event put the
object in this state. Private fields (``interneAantekening``) are shown only to callers
that own them: a principal of the afnemer, or one with every organisation (the admin).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from hub.api.auth import Principal, Reader
from hub.api.context import ApiContext, context
from hub.api.landscape_export import FORMATS, export_landschap
from hub.api.landscape_models import ITEM_MODELS, LandschapOut, page_model
from hub.api.problems import ProblemError
from hub.paging import BadCursor, decode_cursor, encode_cursor
from hub.ports import StoredObject
from hub.ports.landscape import COLLECTIONS, LIST_FILTERS, UnknownFilter
from hub.services.access import Action, may
from hub.services.landscape import public_state
from schemas.landscape import OBJECT_TYPES
from schemas.landscape.privacy import owner_of

router = APIRouter(prefix="/api/v1", tags=["landscape"])

#: What a bezoeker may ``GET`` without a token when ``KOPPELHUB_PUBLIC_READ=true``: the lists,
#: objects and ``…/landschap`` of this router, nothing else. The request guard lets only these
#: through without a token; ``Reader`` still asks the matrix, and private fields stay hidden
#: (``item_json``).
PUBLIC_PATHS = re.compile(
    r"/api/v1/(?:(?:{})(?:/[^/]+)?|organisaties/[^/]+/landschap)".format(
        "|".join(re.escape(c) for c in COLLECTIONS.values())
    )
)
Ctx = Annotated[ApiContext, Depends(context)]

_FILTER_DOCS = {
    "eq": "only objects whose {field} is this id or value",
    "has": "only objects whose {field} include this id",
    "either": "only objects whose {field} is this id",
}


def sees_private(principal: Principal, obj: StoredObject) -> bool:
    """Private fields belong to the object's owner (see :mod:`hub.services.access`)."""
    return may(principal, Action.READ_PRIVATE, owner_of(obj.objecttype, obj.state))


def item_json(obj: StoredObject, principal: Principal) -> dict[str, Any]:
    p = obj.provenance
    fields = dict(obj.state) if sees_private(principal, obj) else public_state(obj)
    return fields | {
        "provenance": {
            "source": p.source,
            "eventId": p.event_id,
            "time": p.time.isoformat().replace("+00:00", "Z") if p.time else None,
            "sequence": p.sequence,
        }
    }


def _collection_routes(objecttype: str) -> None:
    collection = COLLECTIONS[objecttype]
    filters = LIST_FILTERS[objecttype]
    documented = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": _FILTER_DOCS[how].format(field=" or ".join(f) if how == "either" else f),
        }
        for name, (how, f) in filters.items()
    ]

    async def list_objects(
        request: Request,
        principal: Reader,
        ctx: Ctx,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: str | None = None,
    ) -> JSONResponse:
        chosen = {k: v for k, v in request.query_params.items() if k not in ("limit", "cursor")}
        try:
            after = str(decode_cursor(cursor, parts=1)[0]) if cursor else None
            page = await ctx.landscape.list(objecttype, chosen, after=after, limit=limit)
        except BadCursor as e:
            raise ProblemError(400, "Invalid cursor", str(e)) from e
        except UnknownFilter as e:
            raise ProblemError(400, "Unknown filter", str(e)) from e
        next_url = None
        if page.next_cursor is not None:
            next_url = str(request.url.include_query_params(cursor=encode_cursor(page.next_cursor)))
        return JSONResponse({"items": [item_json(o, principal) for o in page.items], "next": next_url})

    async def get_object(object_id: str, principal: Reader, ctx: Ctx) -> JSONResponse:
        found = await ctx.landscape.get(objecttype, object_id)
        if found is None:
            raise ProblemError(404, "Not found", f"no {objecttype} with id {object_id!r}")
        return JSONResponse(item_json(found, principal))

    router.add_api_route(
        f"/{collection}",
        list_objects,
        methods=["GET"],
        summary=f"List {collection}",
        description="Ordered by id, `limit` at a time; `next` is the URL of the following page.",
        responses={200: {"model": page_model(objecttype)}},
        openapi_extra={"parameters": documented} if documented else None,
        operation_id=f"list_{collection}",
    )
    router.add_api_route(
        f"/{collection}/{{object_id}}",
        get_object,
        methods=["GET"],
        summary=f"Read one {objecttype}",
        responses={200: {"model": ITEM_MODELS[objecttype]}, 404: {"description": "no such object"}},
        operation_id=f"get_{objecttype}",
    )


for _objecttype in OBJECT_TYPES:
    _collection_routes(_objecttype)


@router.get(
    "/organisaties/{organisatie_id}/landschap",
    summary="One organisation's landscape: its gebruik with each applicatie resolved, and its koppelingen",
    description=(
        "`format=json` (default) as below; `ameff`: an ArchiMate exchange file (valid against the "
        "Open Group XSD) of its applicaties, gebruik and koppelingen; `csv` / `xlsx`: its gebruik "
        "in the import columns, so the file imports back as it is."
    ),
    responses={
        200: {
            "model": LandschapOut,
            "content": {media: {} for media, _, _ in FORMATS.values()},
        },
        404: {"description": "nothing known of this organisatie"},
    },
)
async def get_landschap(
    organisatie_id: str,
    principal: Reader,
    ctx: Ctx,
    format: Literal["json", "ameff", "csv", "xlsx"] = "json",
) -> Response:
    found = await ctx.landscape.landschap(organisatie_id)
    if found.organisatie is None and not found.gebruik and not found.koppelingen:
        raise ProblemError(404, "Not found", f"nothing is known of organisatie {organisatie_id!r}")
    if format != "json":
        private = may(principal, Action.READ_PRIVATE, organisatie_id)
        return await export_landschap(ctx.landscape, organisatie_id, found, format, private=private)
    return JSONResponse(
        {
            "organisatie": item_json(found.organisatie, principal) if found.organisatie else None,
            "gebruik": [
                {"gebruik": item_json(g, principal), "applicatie": item_json(a, principal) if a else None}
                for g, a in found.gebruik
            ],
            "koppelingen": [item_json(k, principal) for k in found.koppelingen],
        }
    )
