"""The optional access token (WGFPGAN_API_TOKEN). When set, every route but /healthz needs it:

- API clients send `Authorization: Bearer <token>`;
- a browser opens any page once with `?token=<token>`: the server answers with a redirect to the same
  URL without the token (so it does not stay in the address bar or history) and sets an HttpOnly,
  SameSite=Strict cookie, which the pages' own fetch() calls then carry. SameSite=Strict means another
  site cannot make the browser send the cookie with a forged POST (no CSRF on submit/cancel/retry).

Without a token the server only binds to loopback by default (see web/cli.py). Tokens are compared in
constant time.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from web.errors import wants_html

COOKIE = "wgfpgan_token"
OPEN_PATHS = frozenset({"/healthz"})


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class TokenAuth:
    """ASGI middleware enforcing the token (see the module docstring)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self.token or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if _same(bearer(request), self.token) or _same(request.cookies.get(COOKIE), self.token):
            await self.app(scope, receive, send)
            return
        query_token = request.query_params.get("token")
        response: Response
        if _same(query_token, self.token) and request.method == "GET":
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            response = RedirectResponse(scope["path"] + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
            secure = request.url.scheme == "https"
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", secure=secure, path="/")
        else:
            response = refusal(request, wrong=query_token is not None or bearer(request) is not None)
        await response(scope, receive, send)


def refusal(request: Request, *, wrong: bool) -> Response:
    reason = "wrong token" if wrong else "this server needs a token (WGFPGAN_API_TOKEN)"
    if not wants_html(request):
        return JSONResponse(
            {"detail": f"{reason}: send `Authorization: Bearer <token>`", "code": "unauthorized"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    page = f"""<!doctype html><meta charset="utf-8"><title>wgfpgan: token needed</title>
<body style="font-family:sans-serif;max-width:30em;margin:4em auto">
<h1>Token needed</h1><p>{"That token is wrong." if wrong else "This dashboard is protected by a token."}</p>
<form method="get"><input name="token" type="password" placeholder="token" autofocus>
<button>Open</button></form></body>"""
    return HTMLResponse(page, status_code=401)
