"""The JSON API under /api (plus /healthz and /metrics). Sync endpoints: FastAPI runs them in its thread
pool, so database, storage and model calls may block. Submit, cancel and retry call the scheduler's own
functions (scheduler/submit.py, db/queries.py); nothing here re-implements a state transition."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, Field

from db import ItemState, queries
from db.models import Item, Job
from web.app import WebContext, context
from web.errors import ApiError
from web.items import FacesFilter, FilterConflict, ItemFilter, get_item, item_page, item_summary
from web.progress import job_summary

log = logging.getLogger(__name__)
Ctx = Annotated[WebContext, Depends(context)]


class ErrorOut(BaseModel):
    detail: str = Field(description="a readable reason")
    code: str = Field(description="a stable slug, e.g. no_job, not_an_image, too_large, unauthorized")


router = APIRouter(responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}})


# ------------------------------------------------------------------------------------------- models


class JobOut(BaseModel):
    id: int
    name: str
    state: str
    done: bool
    source: str = Field(description="S3 URI, or a local folder's last component only")
    dest: str
    options: dict[str, Any]
    counts: dict[str, int] = Field(description="items per state, from the per-job counters")
    total: int
    finished: int
    progress: float = Field(description="finished / total, 0..1")
    items_per_second: float | None
    eta_seconds: float | None
    speed_measured: Literal["live", "average", "none"]
    created_at: str | None
    finished_at: str | None


class ItemOut(BaseModel):
    id: int
    job_id: int
    key: str = Field(description="path relative to the job's source")
    state: str
    attempts: int
    error_code: str | None
    error_message: str | None
    faces: int | None
    restore_seconds: float | None
    total_seconds: float | None
    model_version: str | None
    has_output: bool
    finished_at: str | None


class ItemPageOut(BaseModel):
    items: list[ItemOut]
    next_after: int | None = Field(description="pass as `after` for the next page (null: last page)")
    prev_before: int | None = Field(description="pass as `before` for the previous page (null: first page)")
    matching: int | None = Field(description="items matching the filter, when the counters know it")


class SubmitIn(BaseModel):
    source: str = Field(description="s3://bucket/prefix/ or a folder on the server")
    dest: str
    name: str | None = None
    upscale: int = Field(2, ge=1, le=4)
    weight: float | None = Field(None, ge=0.0, le=1.0)
    ext: Literal["auto", "png", "jpg"] = "auto"


class SubmitOut(BaseModel):
    id: int
    created: bool
    listed: int
    new_items: int
    dispatched: int
    reopened: int


class CancelOut(BaseModel):
    id: int
    cancelled: int = Field(description="queued items cancelled (running ones finish)")


class RetryOut(BaseModel):
    id: int
    requeued: int
    dispatched: int


class FaceBoxOut(BaseModel):
    left: float
    top: float
    right: float
    bottom: float
    score: float


class TryOut(BaseModel):
    faces: int
    boxes: list[FaceBoxOut] = Field(description="detected faces in input pixel coordinates")
    input_width: int
    input_height: int
    width: int
    height: int
    ext: Literal["png", "jpg"]
    media_type: str
    seconds: float
    model_version: str
    image_base64: str = Field(description="the restored photo, encoded as `ext`")


# -------------------------------------------------------------------------------------------- helpers


def load_job(ctx: WebContext, job_id: int) -> Job:
    job = ctx.database.run(queries.get_job, job_id)
    if job is None:
        raise ApiError(404, "no_job", f"no job {job_id}")
    return job


def load_item(ctx: WebContext, item_id: int) -> tuple[Item, Job]:
    found = ctx.database.run(get_item, item_id)
    if found is None:
        raise ApiError(404, "no_item", f"no item {item_id}")
    return found, load_job(ctx, found.job_id)


def summarize(ctx: WebContext, job: Job) -> dict[str, Any]:
    return job_summary(job, ctx.database.run(queries.counts, job.id), ctx.rates)


# --------------------------------------------------------------------------------------------- routes


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: Ctx) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/jobs", response_model=list[JobOut], summary="Every job (newest first) with progress")
def jobs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    rows = ctx.database.run(queries.list_jobs, limit)
    return [job_summary(job, counts, ctx.rates) for job, counts in rows]


@router.get("/api/jobs/{job_id}", response_model=JobOut, summary="One job with progress, throughput and ETA")
def job(ctx: Ctx, job_id: int) -> dict[str, Any]:
    return summarize(ctx, load_job(ctx, job_id))


@router.get("/api/jobs/{job_id}/items", response_model=ItemPageOut, summary="A page of a job's items (keyset)")
def items(
    ctx: Ctx,
    job_id: int,
    state: ItemState | None = None,
    has_error: bool | None = None,
    faces: FacesFilter = "any",
    after: Annotated[int, Query(ge=0)] = 0,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return items_payload(ctx, load_job(ctx, job_id), ItemFilter(state, has_error, faces), after, before, limit)


def items_payload(
    ctx: WebContext, job: Job, item_filter: ItemFilter, after: int, before: int | None, limit: int
) -> dict[str, Any]:
    """Shared by the API and the job page."""
    try:
        implied = item_filter.implied_state()
    except FilterConflict as exc:
        raise ApiError(400, "filter_conflict", str(exc)) from None
    page = ctx.database.run(item_page, job.id, item_filter, after=after, before=before, limit=limit)
    counts = ctx.database.run(queries.counts, job.id)
    plain = item_filter.has_error is None and item_filter.faces == "any"
    matching = (counts[implied.value] if implied else sum(counts.values())) if plain else None
    return {
        "items": [item_summary(item, job) for item in page.items],
        "next_after": page.next_after,
        "prev_before": page.prev_before,
        "matching": matching,
    }


@router.get("/api/items/{item_id}", response_model=ItemOut, summary="One item")
def item(ctx: Ctx, item_id: int) -> dict[str, Any]:
    found, job = load_item(ctx, item_id)
    return item_summary(found, job)


@router.get(
    "/api/items/{item_id}/image/{which}",
    summary="An item's source or output image, shrunk to `size` (cached)",
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
    response_class=Response,
)
def item_image(
    ctx: Ctx,
    item_id: int,
    which: Literal["source", "output"],
    size: Annotated[int, Query(ge=16, le=4096)] = 1024,
) -> Response:
    from model.imageio import ImageError
    from wgfpgan.storage import ObjectNotFound, StorageError, TransientStorageError

    found, _job = load_item(ctx, item_id)
    uri = found.source_uri if which == "source" else found.output_uri
    if which == "output" and (found.state != ItemState.SUCCEEDED or not uri):
        raise ApiError(404, "no_output", f"item {item_id} has no output ({found.state})")
    try:
        thumb = ctx.thumbnails.get(uri, size)
    except ObjectNotFound:
        raise ApiError(404, "image_missing", f"the {which} image of item {item_id} is gone from storage") from None
    except StorageError:
        raise ApiError(502, "storage_error", f"the {which} image of item {item_id} cannot be read") from None
    except TransientStorageError:
        raise ApiError(503, "storage_unavailable", "storage is unavailable; try again") from None
    except ImageError as exc:
        raise ApiError(422, exc.code, f"the {which} image of item {item_id} cannot be shown: {exc}") from None
    return Response(thumb.data, media_type=thumb.media_type, headers={"Cache-Control": "private, max-age=300"})


@router.post(
    "/api/jobs",
    response_model=SubmitOut,
    status_code=201,
    summary="Submit a folder or S3 prefix",
    responses={400: {"model": ErrorOut}},
)
def submit(ctx: Ctx, body: SubmitIn) -> dict[str, Any]:
    """Lists the source, registers every image as an item and sends them to the workers (like
    `wgfpgan submit`). A re-submission of the same source and dest resumes the existing job."""
    from scheduler.submit import job_options
    from scheduler.submit import submit as submit_job
    from wgfpgan.config import mask_url
    from wgfpgan.storage import StorageError, TransientStorageError

    try:
        result = submit_job(
            ctx.settings,
            body.source,
            body.dest,
            name=body.name,
            options=job_options(upscale=body.upscale, weight=body.weight, ext=body.ext),
        )
    except (ValueError, StorageError) as exc:
        raise ApiError(400, getattr(exc, "code", "bad_request"), mask_url(str(exc))) from None
    except TransientStorageError:
        raise ApiError(503, "storage_unavailable", "storage is unavailable; try again") from None
    except Exception as exc:
        raise broker_or_reraise(exc) from None
    return {"id": result.job_id, **{k: v for k, v in vars(result).items() if k != "job_id"}}


def broker_or_reraise(exc: Exception) -> Exception:
    from kombu.exceptions import OperationalError as BrokerError

    if isinstance(exc, BrokerError | ConnectionError):
        log.warning("broker unavailable: %s", type(exc).__name__)
        return ApiError(503, "broker_unavailable", "the message broker is unavailable; try again")
    return exc


@router.post("/api/jobs/{job_id}/cancel", response_model=CancelOut, summary="Cancel a job's queued items")
def cancel(ctx: Ctx, job_id: int) -> dict[str, Any]:
    load_job(ctx, job_id)
    return {"id": job_id, "cancelled": ctx.database.run(queries.cancel_job, job_id)}


@router.post("/api/jobs/{job_id}/retry", response_model=RetryOut, summary="Requeue failed (and cancelled) items")
def retry(ctx: Ctx, job_id: int, failed_only: bool = False) -> dict[str, Any]:
    """Like `wgfpgan retry`: failed (and, unless `failed_only`, cancelled) items go back to queued and are
    sent to the workers (an embedded `wgfpgan run` job is left for `wgfpgan run` to pick up)."""
    from scheduler.submit import send_queued

    found = load_job(ctx, job_id)
    requeued = ctx.database.run(queries.retry_job, job_id, failed_only=failed_only)
    try:
        dispatched = send_queued(ctx.database, ctx.settings, found)
    except Exception as exc:  # the items stay queued; `wgfpgan reconcile` sends them later
        error = broker_or_reraise(exc)
        if isinstance(error, ApiError):
            error.detail = (
                f"{requeued} items are queued again, but the message broker is unavailable: "
                "`wgfpgan reconcile` sends them once it is back"
            )
        raise error from None
    return {"id": job_id, "requeued": requeued, "dispatched": dispatched}


@router.post(
    "/api/try/restore",
    response_model=TryOut,
    summary="Restore one uploaded photo",
    responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def try_restore(
    ctx: Ctx,
    photo: Annotated[UploadFile, File(description="a PNG/JPEG/WebP/TIFF/BMP photo")],
    weight: Annotated[float, Form(ge=0.0, le=1.0)] = 1.0,
    upscale: Annotated[int, Form(ge=1, le=4)] = 2,
) -> dict[str, Any]:
    """The photo is checked (size, then decoded: empty, not an image, too large, truncated... each refused
    with its reason), its faces detected and restored. The result comes back base64-encoded with the
    face boxes."""
    from model.imageio import ImageError
    from web.tryout import Busy, ModelUnavailable

    data = photo.file.read(ctx.settings.web_max_upload_bytes + 1)
    if len(data) > ctx.settings.web_max_upload_bytes:
        from web.tryout import UploadTooLarge

        raise UploadTooLarge(ctx.settings.web_max_upload_bytes)
    try:
        with ctx.try_seconds.time():
            return ctx.restorer.run(data, weight=weight, upscale=upscale)
    except ImageError as exc:
        status = {"not_an_image": 415, "unsupported_format": 415, "too_large": 413}.get(exc.code, 422)
        raise ApiError(status, exc.code, f"{photo.filename or 'the upload'}: {exc}") from None
    except ModelUnavailable as exc:
        raise ApiError(503, "model_unavailable", str(exc)) from None
    except Busy as exc:
        raise ApiError(503, "busy", str(exc)) from None
