"""What a person in a browser needs from ``stellar-graph serve``: a login, and typed forms.

- **Login**: a browser cannot send the ``X-API-Key`` header, so ``/login`` takes the key in a
  form and sets a session cookie (an HMAC of the key, never the key itself; ``HttpOnly``,
  ``SameSite=Strict``). Every route accepts the header or the cookie; a browser's ``GET``
  without either is sent to ``/login`` and back.
- **Typed forms**: the orchestra's input keys are lists of plain dicts for LangGraph, so the
  LangServe playground drew each item as a free-form box (and sent ``{"": {...}}``). The JSON
  schema it reads now describes each item with the edge models' fields (a task's id,
  description, priority, skills...), inlined and without ``null`` alternatives (its form
  renderer cannot draw them); its table has no cell for a list, so lists of strings are
  comma-separated text, which the edge models split. Requests are validated by the edge
  models, as before. Dict-valued fields (``resources``) stay API-only: the table cannot edit them.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel

from stellar_graph.errors import ConfigurationError

__all__ = ["API_KEY_HEADER", "SESSION_COOKIE", "THREAD_ID", "add_auth", "api_key_from_env", "with_typed_items"]

API_KEY_HEADER = "X-API-Key"
THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""What a thread id may look like on the HTTP routes."""

SESSION_COOKIE = "stellar_graph_session"
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
_SESSION_LABEL = b"stellar_graph session v1"


def session_token(key: str) -> str:
    """The session cookie's value for ``key`` (the key cannot be read back from it)."""
    return hmac.new(key.encode(), _SESSION_LABEL, hashlib.sha256).hexdigest()


def add_auth(app: FastAPI, key: str | None, *, header: str) -> None:
    """Require ``key`` in ``header`` or the session cookie on every route but the open ones."""
    if key is None:
        return
    expected, token = key.encode(), session_token(key).encode()

    @app.middleware("http")
    async def require_api_key(request: Request, call_next: Any) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)  # type: ignore[no-any-return]
        sent = request.headers.get(header, "").encode()
        cookie = request.cookies.get(SESSION_COOKIE, "").encode()
        if hmac.compare_digest(sent, expected) or (cookie and hmac.compare_digest(cookie, token)):
            return await call_next(request)  # type: ignore[no-any-return]
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        fix = f"Missing or wrong API key. Fix: send it in the `{header}` header, or log in at /login."
        return JSONResponse({"detail": fix}, status_code=401)

    @app.get("/login", include_in_schema=False)
    async def login_page(next: str = "/orchestra/playground/") -> HTMLResponse:
        return HTMLResponse(_login_html(_safe_next(next), error=""))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        sent, target = (form.get("key") or [""])[0], _safe_next((form.get("next") or [""])[0])
        if not hmac.compare_digest(sent.encode(), expected):
            return HTMLResponse(_login_html(target, error="Wrong key. Fix: use the key the server was started with."), status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, session_token(key), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _safe_next(target: str) -> str:
    """Only a path on this server (``/x``, never ``//host`` or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/orchestra/playground/"
    return target


def _login_html(target: str, *, error: str) -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stellar_graph: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; display: grid; place-items: center; min-height: 90vh; margin: 0; }}
form {{ display: grid; gap: .75rem; width: 20rem; padding: 2rem; border: 1px solid #ccc; border-radius: .5rem; }}
input, button {{ font-size: 1rem; padding: .5rem; }}
.error {{ color: #b00020; margin: 0; }}
</style></head>
<body><form method="post" action="/login">
<h1>stellar_graph</h1>
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(target, quote=True)}">
{message}
<button type="submit">Log in</button>
</form></body></html>"""


def with_typed_items(
    schema: dict[str, Any], items: Mapping[str, type[BaseModel]], *, hidden: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``schema`` (an object's, or a ``$ref`` to one) with the items of the lists named in ``items``
    described by those models; ``hidden`` keys are left out of the form (not out of the API)."""
    target = schema
    if "$ref" in schema:
        target = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    properties = target.get("properties") or {}
    for name in hidden:
        properties.pop(name, None)
    for name, model in items.items():
        if name in properties:
            item = _form_ready(model.model_json_schema())
            item.pop("description", None)  # the model's docstring, examples and all
            properties[name]["items"] = item
    return schema


def _form_ready(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its ``$ref``\\ s inlined, one branch kept of each ``anyOf`` (the first
    that is not ``null``), ``null`` defaults dropped and lists of strings as comma-separated text."""
    defs = schema.get("$defs") or {}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk({**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}})
        if "anyOf" in node:
            branch: dict[str, Any] = next((b for b in node["anyOf"] if b.get("type") != "null"), {})
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return walk({**branch, **rest})
        out = {k: walk(v) for k, v in node.items() if k != "$defs"}
        if out.get("default", 0) is None:
            del out["default"]
        if out.get("type") == "array" and (out.get("items") or {}).get("type") == "string":
            # The playground's table has no cell for a list: a comma-separated text field instead
            # (the edge models split it: ``"ml, statistics"`` -> ``["ml", "statistics"]``).
            hint = f"{out.get('description', '').rstrip('.')}. Comma-separated.".lstrip(". ")
            out = {"type": "string", "title": out.get("title", ""), "description": hint}
        return out

    return walk(schema)  # type: ignore[no-any-return]


def api_key_from_env(env: str) -> str | None:
    """The API key from ``env``; unset means no auth, set but blank is refused (it would
    silently serve without auth)."""
    key = os.environ.get(env)
    if key is not None and not key.strip():
        raise ConfigurationError(
            f"`{env}` is set but empty, which would serve without authentication. Fix: set it to a "
            f"key, or unset it to serve without auth on purpose.",
            field=env,
            value=key,
        )
    return key
