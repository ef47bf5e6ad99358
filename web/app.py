"""`create_app(settings)`: the FastAPI application — routes from api.py and pages.py, the token
middleware, the upload limit, error handlers — and the per-app state they share (`WebContext`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy.exc import OperationalError

from db import Database, DatabaseNotMigrated
from web.auth import TokenAuth
from web.errors import ApiError, api_error_handler
from web.images import ThumbnailCache
from web.metrics import make_registry
from web.progress import RateTracker
from web.tryout import RestorerHolder, UploadLimit
from wgfpgan import __version__
from wgfpgan.config import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")


@dataclass
class WebContext:
    settings: Settings
    database: Database
    restorer: RestorerHolder
    registry: CollectorRegistry
    try_seconds: Histogram
    rates: RateTracker = field(default_factory=RateTracker)
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)


def context(request: Request) -> WebContext:
    """FastAPI dependency: the app's shared state."""
    return request.app.state.ctx


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """The dashboard for `settings` (default: the environment). Raises DatabaseNotMigrated at once for a
    database that needs `wgfpgan db upgrade`, rather than on the first page view."""
    from web import api, pages

    settings = settings or Settings.from_env()
    database = database or Database.from_settings(settings)
    registry, try_seconds = make_registry(database)
    app = FastAPI(
        title="wgfpgan",
        version=__version__,
        description="Bulk face restoration: jobs, items, submit/cancel/retry, and restoring one photo.",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.ctx = WebContext(settings, database, RestorerHolder(settings), registry, try_seconds)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(DatabaseNotMigrated, _not_migrated)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_middleware(UploadLimit, max_bytes=settings.web_max_upload_bytes)
    app.add_middleware(TokenAuth, token=settings.api_token)  # added last = runs first
    return app


async def _not_migrated(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "the status database schema is out of date: run `wgfpgan db upgrade`", "code": "not_migrated"},
        status_code=503,
    )


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("status database error: %s", type(exc).__name__)
    return JSONResponse({"detail": "the status database is unavailable", "code": "database_unavailable"}, 503)
