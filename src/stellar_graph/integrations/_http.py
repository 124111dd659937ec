"""One HTTP exchange through an httpx transport, without the client's request log.

``httpx.AsyncClient`` logs every request URL at INFO. Here URLs carry secrets (a Slack
incoming-webhook URL *is* a credential, webhook URLs often embed tokens) or model data (the
path and query an agent chose), and the style guide keeps both out of logs. Going through the
transport sends the same request without that log line; redirects are never followed, so a 3xx
cannot lead a request past the address checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from stellar_graph.integrations._urls import Resolver, pinned

__all__ = ["USER_AGENT", "send"]

USER_AGENT = "stellar-graph/1"


async def send(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout_seconds: float,
    content: bytes | None = None,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    resolve: Resolver | None = None,
    allow_private: bool = False,
) -> httpx.Response:
    """Send one request and read the whole response.

    With ``resolve``, the host is resolved and checked now and the request connects to that
    address (:func:`~stellar_graph.integrations._urls.pinned`).

    Raises:
        httpx.TransportError: connection, TLS or timeout failures.
        RefusedAddressError: the host now resolves to a non-public address.
        OSError: the host does not resolve.
    """
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}
    extra: dict[str, str] = {}
    if resolve is not None:
        url, extra, sni = await pinned(url, allow_private=allow_private, resolve=resolve)
        extensions.update(sni)
    request = httpx.Request(
        method,
        url,
        headers={"User-Agent": USER_AGENT, **headers, **extra},
        content=content,
        json=json,
        params=params,
        extensions=extensions,
    )
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response
