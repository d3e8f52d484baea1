"""Batch imports: upload a CSV, xlsx or AMEFF file; follow its status; download its error report.

The upload is stored under ``<data dir>/imports/<id>/`` and queued in PostgreSQL; a process
running the ``connectors`` role claims and runs it, so a restarted API loses nothing. The
data dir must therefore be shared between the API and the connectors role (one volume).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from connectors.tabular.export import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, template_csv, template_xlsx
from hub.api.audit_trail import ChangeAudit
from hub.api.auth import ConnectorManager
from hub.api.context import ApiContext, context
from hub.api.ownership import check_import_right
from hub.api.problems import ProblemError, field_errors
from hub.errors import NotFound
from hub.paging import BadCursor
from hub.ports import ImportRecord, ImportStore
from hub.services.access import Action, listed_organisation, may
from hub.services.imports import AMEFF, ImportLifecycle, check_options, import_spec
from schemas.landscape import OBJECT_TYPES

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])
Ctx = Annotated[ApiContext, Depends(context)]
ERRORS_SHOWN = 100
_CHUNK = 1 << 20


def _store(ctx: ApiContext) -> ImportStore:
    if ctx.imports is None:
        raise ProblemError(503, "Service unavailable", "imports are not served by this process")
    return ctx.imports


def _safe_name(name: str | None) -> str:
    """The client's file name as one plain name in the import's folder; ``upload`` when nothing
    of it is left, or only ``.`` or ``..``, which would name a folder (a 500)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or "").name)[:100]
    return "upload" if base in ("", ".", "..") else base


async def _save(upload: UploadFile, target: Path, limit: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                out.close()
                shutil.rmtree(target.parent, ignore_errors=True)
                raise ProblemError(413, "File too large", f"the limit is {limit} bytes")
            out.write(chunk)
    return size


def import_json(r: ImportRecord, errors: list[dict[str, Any]], error_count: int) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "organisatie": r.organisatie,
        "objecttype": r.objecttype,
        "mode": r.mode,
        "filename": r.filename,
        "status": r.status,
        "progress": {"rowsRead": r.rows_read},
        "counts": {k: r.counts.get(k, 0) for k in ("read", "published", "unchanged", "invalid", "withdrawn")},
        "report": r.report,
        "notes": list(r.counts.get("notes", ())),
        "error": r.error,
        "errors": errors,
        "errorCount": error_count,
        "errorReport": f"{router.prefix}/{r.id}/errors.csv",
        "createdAt": r.created_at.isoformat(),
        "startedAt": r.started_at.isoformat() if r.started_at else None,
        "finishedAt": r.finished_at.isoformat() if r.finished_at else None,
    }


@router.post("", status_code=202, summary="Upload a file to import (CSV, xlsx or AMEFF)")
async def create_import(
    principal: ConnectorManager,
    ctx: Ctx,
    audit: ChangeAudit,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, , or ;), xlsx, or AMEFF XML")],
    objecttype: Annotated[str, Form(description="A landscape object type, or 'ameff'")],
    organisatie: Annotated[str, Form(min_length=1, description="id of the importing organisatie")],
    mode: Annotated[Literal["incremental", "full"] | None, Form()] = None,
    sheet: Annotated[str | None, Form(description="xlsx: the sheet to read (default: the first)")] = None,
    gemma: Annotated[
        bool, Form(description="ameff: import ApplicationComponents as GEMMA referentiecomponenten")
    ] = False,
    gemmaGuidProperty: Annotated[str | None, Form(description="ameff + gemma: the GUID property")] = None,
    force: Annotated[bool, Form(description="publish every row, also unchanged ones (repair)")] = False,
) -> JSONResponse:
    check_import_right(principal, organisatie, objecttype, gemma=gemma)
    if objecttype not in OBJECT_TYPES and objecttype != AMEFF:
        allowed = [*OBJECT_TYPES, AMEFF]
        raise ProblemError(
            400,
            "Invalid request",
            f"objecttype must be one of {allowed}",
            errors=[{"field": "objecttype", "message": f"must be one of {allowed}"}],
        )
    import_id = uuid.uuid4()
    name = _safe_name(file.filename)
    uploads = ctx.settings.data_dir.resolve() / "imports"
    path = uploads / str(import_id) / name
    spec = import_spec(
        organisatie,
        objecttype,
        path,
        mode=mode,
        sheet=sheet,
        gemma=gemma,
        gemma_guid_property=gemmaGuidProperty,
        force=force,
    )
    try:  # options are checked before the upload is stored
        check_options(spec)
    except ValidationError as e:
        errors = field_errors(e.errors())
        raise ProblemError(
            400, "Invalid request", "; ".join(f"{x['field']}: {x['message']}" for x in errors), errors=errors
        ) from e
    size = await _save(file, path, ctx.settings.connectors.max_upload_bytes)
    if size == 0:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise ProblemError(
            400, "Empty file", "the uploaded file is empty", errors=[{"field": "file", "message": "is empty"}]
        )
    record = await ImportLifecycle(_store(ctx), uploads).create(
        spec, import_id, audit=audit.change(202, created=True)
    )
    if ctx.wake_connectors:
        ctx.wake_connectors()
    href = f"{router.prefix}/{record.id}"
    return JSONResponse(
        {"id": str(record.id), "status": record.status, "href": href},
        status_code=202,
        headers={"Location": href},
    )


@router.get("", summary="Past and queued imports, newest first, with status and counts")
async def list_imports(
    request: Request,
    principal: ConnectorManager,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Each item is an import as ``GET /imports/{id}`` shows it, without its row errors (their
    number is in ``errorCount`` there); an organisation's token sees its own imports only."""
    try:
        org = listed_organisation(principal, Action.MANAGE_KOPPELINGEN)
        page = await _store(ctx).history(limit=limit, cursor=cursor, organisatie=org)
    except BadCursor as e:
        raise ProblemError(400, "Invalid cursor", str(e)) from e
    items = []
    for r in page.items:
        item = import_json(r, [], 0)
        del item["errors"], item["errorCount"]
        items.append(item)
    next_url = str(request.url.include_query_params(cursor=page.next_cursor)) if page.next_cursor else None
    return {"items": items, "next": next_url}


@router.get("/templates/{name}", summary="An empty import file with the columns of an object type")
async def template(name: str, _: ConnectorManager) -> Response:
    objecttype, _sep, ext = name.rpartition(".")
    if objecttype not in OBJECT_TYPES or ext not in ("csv", "xlsx"):
        raise ProblemError(
            404, "Not found", f"templates are <objecttype>.csv or .xlsx for {list(OBJECT_TYPES)}"
        )
    if ext == "csv":
        body, media = template_csv(objecttype), CSV_MEDIA_TYPE
    else:
        body, media = template_xlsx(objecttype), XLSX_MEDIA_TYPE
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _get(import_id: uuid.UUID, principal: Any, ctx: ApiContext) -> ImportRecord:
    try:
        record = await _store(ctx).get(import_id)
    except NotFound as e:
        raise ProblemError(404, "Not found", str(e)) from e
    if not may(principal, Action.MANAGE_KOPPELINGEN, record.organisatie):  # existence not revealed
        raise ProblemError(404, "Not found", f"import {import_id} does not exist")
    return record


@router.get("/{import_id}", summary="Status, counts and row errors of an import")
async def get_import(import_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx) -> dict[str, Any]:
    record = await _get(import_id, principal, ctx)
    store = _store(ctx)
    errors = [
        {"row": e.row, "column": e.column, "message": e.message}
        for e in await store.errors(import_id, limit=ERRORS_SHOWN)
    ]
    count = len(errors) if len(errors) < ERRORS_SHOWN else await store.error_count(import_id)
    return import_json(record, errors, count)


@router.get("/{import_id}/errors.csv", summary="Every row error of an import, as CSV")
async def error_report(import_id: uuid.UUID, principal: ConnectorManager, ctx: Ctx) -> StreamingResponse:
    await _get(import_id, principal, ctx)
    store = _store(ctx)

    async def lines() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["row", "column", "message"])
        yield ("\ufeff" + out.getvalue()).encode()
        async for e in store.stream_errors(import_id):
            out.seek(0)
            out.truncate()
            writer.writerow(["" if e.row is None else e.row, e.column, e.message])
            yield out.getvalue().encode()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )
