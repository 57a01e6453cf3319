"""The dashboard's token: checked on every request, compared in constant time, never echoed.

A client sends it as ``Authorization: Bearer <token>``; a browser opens ``...?token=<token>`` once, and
gets an HttpOnly, SameSite=Strict cookie holding a value derived from the token (not the token itself)
and a redirect to the same address without the token, so it stays out of the history and of logs.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL, Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

__all__ = ["COOKIE", "TokenGate"]

COOKIE = "openrouter_attribution_dashboard"
_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Token required</title>
<style>body{font-family:system-ui,sans-serif;margin:4rem auto;max-width:28rem;color:#0f172a}
input{padding:.4rem;width:100%;margin:.5rem 0}button{padding:.4rem 1rem}</style></head>
<body><h1>Usage dashboard</h1><p>This dashboard needs its access token.</p>
<form method="get" action=""><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Open</button></form></body></html>"""


class TokenGate:
    """ASGI middleware: lets a request through only with the token (see the module docstring)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()
        self._session = hmac.new(self._token, b"openrouter-attribution dashboard session", hashlib.sha256).hexdigest()

    def _valid(self, offered: str | None, expected: bytes) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        if (scheme.lower() == "bearer" and self._valid(bearer.strip(), self._token)) or (
            cookie is not None and self._valid(cookie.value, self._session.encode())
        ):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = next((value for name, value in query if name == "token"), None)
        if self._valid(offered, self._token):
            response: Response = self._admit(scope, query)
        elif "application/json" in headers.get("accept", "") or scope["path"].startswith("/api/"):
            response = JSONResponse({"error": "a valid token is required"}, 401, {"WWW-Authenticate": "Bearer"})
        else:
            response = HTMLResponse(_FORM, 401, {"WWW-Authenticate": "Bearer"})
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)

    def _admit(self, scope: dict[str, Any], query: list[tuple[str, str]]) -> Response:
        """Redirect to the same address without the token, setting the session cookie."""
        url = URL(scope=scope)
        rest = urlencode([(name, value) for name, value in query if name != "token"])
        response = RedirectResponse(str(url.replace(query=rest)) if rest else str(url.replace(query="")), 303)
        response.set_cookie(COOKIE, self._session, httponly=True, samesite="strict", path=scope.get("root_path") or "/",
                            secure=url.scheme == "https")  # fmt: skip
        return response
