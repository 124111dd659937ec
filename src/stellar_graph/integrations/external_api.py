"""External HTTP APIs as LangChain tools that agents can call, rate-limited, with secret credentials.

Example (the seed's call, in Python)::

    tool = await orchestra.integrate_external_api(
        "research_database", "https://api.research.org", "bearer_token",
        {"requests_per_minute": 100}, credential_env="RESEARCH_DB_TOKEN",
    )

The credential is referenced by the *name* of an environment variable and read at call time.
Its value is never stored on the tool, never logged, never part of a tool argument, result or
error (a response that echoes it back is redacted), so it cannot reach state, checkpoints or
traces. Tool arguments (paths, queries, bodies) are not logged either: they are model data.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel, Field

from stellar_graph.errors import ConfigurationError
from stellar_graph.integrations._http import send
from stellar_graph.integrations._redact import redact_secrets
from stellar_graph.integrations._urls import check_outbound_url
from stellar_graph.integrations.ratelimit import RateLimitExceeded, TokenBucket

__all__ = [
    "AUTH_TYPES",
    "ExternalAPIClient",
    "ExternalAPIRequest",
    "ExternalAPISpec",
    "create_external_api_tool",
    "require_credential",
]

logger = logging.getLogger(__name__)

AuthType = Literal["bearer_token", "api_key_header", "none"]
AUTH_TYPES: tuple[str, ...] = ("bearer_token", "api_key_header", "none")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ExternalAPISpec:
    """One external API: where it is, how to authenticate, how fast it may be called.

    Attributes:
        name: the tool name agents see (letters, digits, ``_`` and ``-``; at most 64).
        endpoint: the base URL; agents give a path under it.
        authentication: ``bearer_token`` (``Authorization: Bearer …``), ``api_key_header``
            (the key in ``header_name``) or ``none``.
        credential_env: the environment variable holding the credential; defaults to
            ``STELLAR_GRAPH_<NAME>_TOKEN``. Only the name is kept, never the value.
        header_name: the header of ``api_key_header``.
        requests_per_minute: sustained rate of the token bucket.
        burst: calls allowed at once (defaults to ``requests_per_minute``).
        max_wait_seconds: a call waits this long at most for a token, else it is refused.
        timeout_seconds: limit of one HTTP request.
        description: what agents read to decide when to call the tool.
        allow_http: allow a credential over plain http (loopback hosts are always allowed).
        max_response_chars: longer responses are cut (they go into the agent's context).
    """

    name: str
    endpoint: str
    authentication: AuthType = "none"
    credential_env: str | None = None
    header_name: str = "X-API-Key"
    requests_per_minute: float = 60.0
    burst: int | None = None
    max_wait_seconds: float = 10.0
    timeout_seconds: float = 10.0
    description: str = ""
    allow_http: bool = False
    max_response_chars: int = 8000

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"External API `name` = {self.name!r} is not a valid tool name. Fix: use 1-64 "
                "letters, digits, '_' or '-', e.g. 'research_database'.",
                field="name",
                value=self.name,
            )
        if self.authentication not in AUTH_TYPES:
            raise ConfigurationError(
                f"`authentication` = {self.authentication!r} is not supported. "
                f"Fix: use one of {list(AUTH_TYPES)}.",
                field="authentication",
                value=self.authentication,
            )
        self._check_endpoint()
        TokenBucket(self.requests_per_minute, burst=self.burst)  # validates rate and burst
        if not self.max_wait_seconds >= 0 or not self.timeout_seconds > 0:
            raise ConfigurationError(
                f"`max_wait_seconds` = {self.max_wait_seconds!r} must be >= 0 and "
                f"`timeout_seconds` = {self.timeout_seconds!r} must be > 0.",
                field="rate_limits.max_wait_seconds",
                value=self.max_wait_seconds,
            )

    def _check_endpoint(self) -> None:
        # No address check here: the endpoint is the developer's choice, and agents can only
        # add a path under it (see ExternalAPIClient._url).
        check_outbound_url(self.endpoint, field="endpoint", allow_private=True)
        parts = urlsplit(self.endpoint)
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"`endpoint` = {self.endpoint!r} must not carry a query or fragment. "
                "Fix: pass query values as the tool's `params`.",
                field="endpoint",
                value=self.endpoint,
            )
        loopback = parts.hostname in {"127.0.0.1", "::1", "localhost"}
        if (
            parts.scheme == "http"
            and not loopback
            and self.authentication != "none"
            and not self.allow_http
        ):
            raise ConfigurationError(
                f"`endpoint` = {self.endpoint!r} is plain http, so the {self.authentication} "
                "credential would travel unencrypted. Fix: use https, or pass `allow_http=True` "
                "for a trusted network.",
                field="endpoint",
                value=self.endpoint,
            )

    @property
    def credential_variable(self) -> str | None:
        """The environment variable read for the credential (``None`` without authentication)."""
        if self.authentication == "none":
            return None
        return self.credential_env or f"STELLAR_GRAPH_{self.name.upper().replace('-', '_')}_TOKEN"

    @classmethod
    def from_seed(
        cls,
        name: str | Mapping[str, Any],
        endpoint: str | None = None,
        authentication: str | Mapping[str, Any] | None = None,
        rate_limits: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> ExternalAPISpec:
        """Build a spec from the seed's arguments or its single-dict form.

        ``authentication`` may be a string or ``{"type", "credential_env", "header"}``;
        ``rate_limits`` holds ``requests_per_minute`` and optionally ``burst`` and
        ``max_wait_seconds``.

        Raises:
            ConfigurationError: an unknown key or a bad value (the message names it).
        """
        if isinstance(name, Mapping):
            data = dict(name)
            unknown = sorted(set(data) - {"name", "endpoint", "authentication", "rate_limits"})
            if unknown:
                raise ConfigurationError(
                    f"Unknown external API key(s) {unknown}. Fix: use name, endpoint, authentication, rate_limits.",
                    field=unknown[0],
                )
            name, endpoint = data.get("name"), data.get("endpoint")  # type: ignore[assignment]
            authentication, rate_limits = data.get("authentication"), data.get("rate_limits")
        kwargs: dict[str, Any] = {**_auth_kwargs(authentication), **_rate_kwargs(rate_limits)}
        kwargs.update({k: v for k, v in extra.items() if v is not None})
        if endpoint is None:
            raise ConfigurationError(
                f"External API {name!r} needs an `endpoint`. Fix: pass its base URL, e.g. 'https://api.example.org'.",
                field="endpoint",
            )
        return cls(name=name, endpoint=endpoint, **kwargs)  # type: ignore[arg-type]


def _auth_kwargs(auth: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if auth is None or isinstance(auth, str):
        return {"authentication": auth or "none"}
    allowed = {
        "type": "authentication",
        "credential_env": "credential_env",
        "header": "header_name",
    }
    unknown = sorted(set(auth) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"Unknown `authentication` key(s) {unknown}. Fix: use {sorted(allowed)}.",
            field="authentication",
            value=dict(auth),
        )
    return {allowed[k]: v for k, v in auth.items()}


def _rate_kwargs(limits: Mapping[str, Any] | None) -> dict[str, Any]:
    allowed = {"requests_per_minute", "burst", "max_wait_seconds"}
    unknown = sorted(set(limits or {}) - allowed)
    if unknown:
        raise ConfigurationError(
            f"Unknown `rate_limits` key(s) {unknown}. Fix: use {sorted(allowed)}.",
            field="rate_limits",
            value=dict(limits or {}),
        )
    return dict(limits or {})


class ExternalAPIRequest(BaseModel):
    """The arguments an agent gives the tool."""

    path: str = Field(
        default="",
        description="Path under the API's base URL, e.g. 'papers/search'. No scheme, host or query.",
    )
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters."
    )
    body: dict[str, Any] | None = Field(default=None, description="JSON body (POST only).")


class ExternalAPIClient:
    """Calls one external API under its rate limit; :meth:`as_tool` makes it an agent tool.

    Args:
        spec: the API.
        bucket: the rate limiter (default: from the spec's rate settings).
        transport: an httpx transport to send through; by default each call opens its own, so
            the tool works from any event loop. Proxies from the environment are not applied.

    Attributes:
        stats: ``calls`` made, ``rate_limited`` refusals, ``errors`` (HTTP >= 400 or transport).
    """

    def __init__(
        self,
        spec: ExternalAPISpec,
        *,
        bucket: TokenBucket | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.bucket = bucket or TokenBucket(spec.requests_per_minute, burst=spec.burst)
        self.stats = {"calls": 0, "rate_limited": 0, "errors": 0}
        self._transport = transport

    async def request(
        self,
        path: str = "",
        method: str = "GET",
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> str:
        """Make one call and return ``"HTTP <status>\\n<body>"`` (the body cut to size).

        Raises:
            ToolException: rate limited, a bad path, a missing credential, a transport error or
                an HTTP error status. The message is meant for the agent and never holds the
                credential.
        """
        name = self.spec.name
        url = self._url(path)
        secret, headers = self._auth()
        try:
            await self.bucket.acquire(self.spec.max_wait_seconds)
        except RateLimitExceeded as exc:
            self.stats["rate_limited"] += 1
            logger.debug("external api %s: rate limited (retry in %.1fs)", name, exc.retry_after)
            raise ToolException(
                f"{name}: {exc}. Try again later or use what you already have."
            ) from None
        self.stats["calls"] += 1
        response = await self._send(method, url, headers, params, body)
        text = _cut(_redact(response.text, secret), self.spec.max_response_chars)
        logger.debug("external api %s: %s -> HTTP %d", name, method, response.status_code)
        if response.status_code >= 400:
            self.stats["errors"] += 1
            raise ToolException(
                f"{name}: HTTP {response.status_code} for {method} /{path.lstrip('/')}: {text[:500]}"
            )
        return f"HTTP {response.status_code}\n{text}"

    def as_tool(self) -> StructuredTool:
        """The LangChain tool (errors come back to the agent as the tool's text)."""
        spec = self.spec

        async def call_api(
            path: str = "",
            method: str = "GET",
            params: dict[str, Any] | None = None,
            body: dict[str, Any] | None = None,
        ) -> str:
            return await self.request(path, method, params, body)

        description = (
            spec.description
            or f"Call the external API {spec.name!r} at {spec.endpoint} (GET or POST a path under it)."
        )
        limit = f" Rate limit: {spec.requests_per_minute:g} requests/minute."
        return StructuredTool.from_function(
            coroutine=call_api,
            name=spec.name,
            description=description + limit,
            args_schema=ExternalAPIRequest,
            handle_tool_error=True,
            metadata={
                "stellar_graph": {
                    "kind": "external_api",
                    "endpoint": spec.endpoint,
                    "authentication": spec.authentication,
                    "credential_env": spec.credential_variable,
                }
            },
        )

    # -- internals -------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        clean = (path or "").strip()
        decoded = unquote(clean)
        segments = decoded.replace("\\", "/").split("/")
        if (
            "://" in decoded
            or decoded.startswith("//")
            or any(c in decoded for c in "?#")
            or ".." in segments
        ):
            raise ToolException(
                f"{self.spec.name}: path {clean!r} is not allowed: give a relative path under "
                f"{self.spec.endpoint} without '..', a scheme or a query (use `params`)."
            )
        base = self.spec.endpoint.rstrip("/")
        return f"{base}/{clean.lstrip('/')}" if clean else base

    def _auth(self) -> tuple[str | None, dict[str, str]]:
        variable = self.spec.credential_variable
        if variable is None:
            return None, {}
        secret = os.environ.get(variable)
        if not secret:
            raise ToolException(
                f"{self.spec.name}: its credential is not configured (environment variable {variable} is not set)."
            )
        if self.spec.authentication == "bearer_token":
            return secret, {"Authorization": f"Bearer {secret}"}
        return secret, {self.spec.header_name: secret}

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        # Not httpx.AsyncClient: it logs each URL at INFO, and path and query are model data.
        kwargs: dict[str, Any] = {
            "headers": headers,
            "params": dict(params or {}),
            "timeout_seconds": self.spec.timeout_seconds,
        }
        if method == "POST":
            kwargs["json"] = dict(body or {})
        try:
            if self._transport is not None:
                return await send(self._transport, method, url, **kwargs)
            async with httpx.AsyncHTTPTransport() as transport:
                return await send(transport, method, url, **kwargs)
        except httpx.TransportError as exc:  # includes timeouts; the message holds no headers
            self.stats["errors"] += 1
            raise ToolException(
                f"{self.spec.name}: request failed ({type(exc).__name__}); the API may be down or slow."
            ) from None


def create_external_api_tool(
    name: str | Mapping[str, Any],
    endpoint: str | None = None,
    authentication: str | Mapping[str, Any] | None = None,
    rate_limits: Mapping[str, Any] | None = None,
    **options: Any,
) -> StructuredTool:
    """Make a rate-limited LangChain tool for an external HTTP API.

    Args:
        name: the tool name, or the seed's whole dict (``name``, ``endpoint``,
            ``authentication``, ``rate_limits``).
        endpoint: the base URL.
        authentication: ``bearer_token``, ``api_key_header``, ``none`` or a dict with
            ``type``, ``credential_env`` and ``header``.
        rate_limits: ``{"requests_per_minute": 100, "burst": 10, "max_wait_seconds": 5}``.
        **options: further :class:`ExternalAPISpec` fields (``credential_env``, ``description``,
            ``timeout_seconds``, ``allow_http``...).

    Returns:
        A ``StructuredTool`` whose coroutine calls the API (async only).

    Raises:
        ConfigurationError: a bad setting, or the credential's environment variable is unset.

    Example:
        >>> tool = create_external_api_tool("weather", "https://api.weather.example", "none",
        ...                                 {"requests_per_minute": 30})
    """
    spec = ExternalAPISpec.from_seed(name, endpoint, authentication, rate_limits, **options)
    require_credential(spec)
    return ExternalAPIClient(spec).as_tool()


def require_credential(spec: ExternalAPISpec) -> None:
    """Check that the spec's credential variable is set (its value is not kept).

    Raises:
        ConfigurationError: the variable is unset or empty; the message names it.
    """
    variable = spec.credential_variable
    if variable is not None and not os.environ.get(variable):
        raise ConfigurationError(
            f"External API {spec.name!r} uses {spec.authentication} but environment variable "
            f"{variable} is not set. Fix: export {variable}=<credential>, or pass "
            "`credential_env=` naming the variable that holds it.",
            field="credential_env",
            value=variable,
        )


def _redact(text: str, secret: str | None) -> str:
    return redact_secrets(text, [secret])


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [cut {len(text) - limit} characters]"
