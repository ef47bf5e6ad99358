"""One error shape for the JSON API: `{"detail": "<readable reason>", "code": "<stable slug>"}`.

`ApiError` is an HTTPException so FastAPI lets it through body parsing untouched (the upload limit is
raised while the multipart body streams in). A browser opening a page gets the reason as an HTML page."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response


class ApiError(HTTPException):
    def __init__(self, status_code: int, code: str, detail: str) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.code = code


def wants_html(request: Request) -> bool:
    """A browser opening a page (not the API, not a script)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if wants_html(request):
        from web.pages import render

        return render(request, "error.html", status_code=exc.status_code, detail=exc.detail)
    return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status_code)
