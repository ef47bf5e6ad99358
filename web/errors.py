"""One error shape for the JSON API: `{"detail": "<readable reason>", "code": "<stable slug>"}`.

`ApiError` is an HTTPException so FastAPI lets it through body parsing untouched (the upload limit is
raised while the multipart body streams in)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse


class ApiError(HTTPException):
    def __init__(self, status_code: int, code: str, detail: str) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.code = code


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status_code)
