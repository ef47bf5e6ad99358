"""The HTML pages (Jinja2 templates in web/templates, scripts in web/static). The pages render from the
same payloads as the JSON API (api.py) and refresh themselves by polling it: one place builds each view.

- `/`: every job, live (static/jobs.js polls /api/jobs every 2 s).
- `/jobs/{id}`: a job's header (live) and its items table, filtered and keyset-paged server-side.
- `/items/{id}`: one item, with a before/after slider for a succeeded item.
- `/try`: upload one photo and compare (static/try.js posts to /api/try/restore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from db import ItemState
from web.api import Ctx, items_payload, load_item, load_job, summarize
from web.errors import ApiError
from web.items import FacesFilter, ItemFilter, item_summary
from web.progress import job_summary

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))


def render(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, values, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, ctx: Ctx) -> HTMLResponse:
    from db import queries

    rows = ctx.database.run(queries.list_jobs, 200)
    return render(request, "jobs.html", jobs=[job_summary(job, counts, ctx.rates) for job, counts in rows])


def _bool_param(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request,
    ctx: Ctx,
    job_id: int,
    state: str = "",
    has_error: str = "",
    faces: FacesFilter = "any",
    after: Annotated[int, Query(ge=0)] = 0,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HTMLResponse:
    job = load_job(ctx, job_id)
    item_filter = ItemFilter(ItemState(state) if state in set(ItemState) else None, _bool_param(has_error), faces)
    filters = {"state": state, "has_error": has_error, "faces": faces, "limit": limit}
    try:
        page = items_payload(ctx, job, item_filter, after, before, limit)
        problem = None
    except ApiError as exc:
        page = {"items": [], "next_after": None, "prev_before": None, "matching": 0}
        problem = exc.detail
    return render(
        request,
        "job.html",
        job=summarize(ctx, job),
        page=page,
        filters=filters,
        states=[s.value for s in ItemState],
        problem=problem,
    )


@router.get("/items/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, ctx: Ctx, item_id: int) -> HTMLResponse:
    found, job = load_item(ctx, item_id)
    return render(request, "item.html", item=item_summary(found, job), job=summarize(ctx, job))


@router.get("/try", response_class=HTMLResponse)
def try_page(request: Request, ctx: Ctx) -> HTMLResponse:
    return render(request, "try.html", max_upload_mb=ctx.settings.web_max_upload_bytes / 1e6)
