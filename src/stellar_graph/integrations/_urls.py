"""Outbound URL checks: http(s) only, and no private, loopback or link-local targets by default.

A webhook URL is configuration, but it is often pasted from elsewhere, and a URL that points at
``169.254.169.254`` or ``127.0.0.1`` turns the orchestra into a proxy into its own network (SSRF).
The host is resolved when the URL is configured, and again at every send: every address it
resolves to must be globally routable unless the caller allows private targets, and the request
connects to the address just checked (:func:`pinned`), with the original ``Host`` header and TLS
server name, so a DNS answer that changes between the check and the connection (DNS rebinding)
cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stellar_graph.errors import ConfigurationError

__all__ = ["RefusedAddressError", "Resolver", "check_outbound_url", "pinned", "redact_url", "system_resolver"]

Resolver = Callable[[str, int], Iterable[str]]
"""``(host, port) -> IP address strings``; the default asks the system resolver."""


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with ``socket.getaddrinfo`` (blocking; used at configure time only)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class RefusedAddressError(ConnectionError):
    """At send time the host resolved to an address the configure-time check would refuse."""


async def pinned(url: str, *, allow_private: bool, resolve: Resolver) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Resolve ``url``'s host now, check every address, and aim the request at the first one.

    Returns:
        The URL with the checked address as its host, the ``Host`` header, and the request
        extensions (``sni_hostname``: TLS still verifies the certificate of the original host).

    Raises:
        RefusedAddressError: an address is not public and ``allow_private`` is false.
        OSError: the host does not resolve (a transient failure: the caller may retry).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _literal(host)
    if addresses is None:
        addresses = await asyncio.to_thread(lambda: list(resolve(host, port)))
    if not addresses:
        raise OSError(f"host {host!r} resolved to no address")
    if not allow_private:
        for address in addresses:
            try:
                _require_public(address, host, "url", url)
            except ConfigurationError:
                raise RefusedAddressError(
                    f"{redact_url(url)}: host {host!r} now resolves to {address}, a non-public address "
                    "(it was public when configured): the request is not sent."
                ) from None
    address = addresses[0].split("%", 1)[0]
    netloc = (f"[{address}]" if ":" in address else address) + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}, extensions


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` only: paths and queries of webhook URLs often carry tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}/…"


def check_outbound_url(
    url: object,
    *,
    field: str,
    allow_private: bool = False,
    resolve: Resolver = system_resolver,
) -> str:
    """Check that ``url`` is an http(s) URL whose host is a public address.

    Args:
        url: the URL to check.
        field: the setting it came from, named in the error.
        allow_private: accept loopback, private, link-local and reserved addresses (tests,
            in-cluster receivers).
        resolve: the resolver used for host names (IP literals are never resolved).

    Returns:
        The URL, unchanged.

    Raises:
        ConfigurationError: wrong scheme, no host, an unresolvable host, or a non-public address
            while ``allow_private`` is false. The message names the field, the value and the fix.
    """
    if not isinstance(url, str):
        raise ConfigurationError(
            f"`{field}` must be an http(s) URL string, got {type(url).__name__} {url!r}.",
            field=field,
            value=url,
        )
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r} is not a valid URL ({exc}). Fix: use https://host/path.",
            field=field,
            value=redact_url(url),
        ) from None
    if parts.scheme not in {"http", "https"}:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r} uses scheme {parts.scheme!r}; only http and https are allowed. "
            "Fix: use an https:// URL.",
            field=field,
            value=redact_url(url),
        )
    if "@" in parts.netloc or "\\" in parts.netloc:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r} carries credentials or a backslash before its host; URL "
            "parsers disagree on such hosts, so the address checked may not be the one reached. Fix: "
            "put credentials in headers or the configured secret, not in the URL.",
            field=field,
            value=redact_url(url),
        )
    host = parts.hostname
    if not host:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r} has no host. Fix: use https://host/path.", field=field, value=redact_url(url)
        )
    if allow_private:
        return url
    for address in _addresses(host, port, field, url, resolve):
        _require_public(address, host, field, url)
    return url


def _literal(host: str) -> list[str] | None:
    """The address of an IP literal or a ``localhost`` name (never looked up); ``None`` for others."""
    if host == "localhost" or host.endswith(".localhost"):
        return ["127.0.0.1"]  # RFC 6761: always loopback, whatever a resolver says
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return [host]


def _addresses(host: str, port: int, field: str, url: str, resolve: Resolver) -> list[str]:
    literal = _literal(host)
    if literal is not None:
        return literal
    try:
        found = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r}: host {host!r} does not resolve ({exc}). Fix: check the host "
            "name and DNS, or pass `allow_private=True` for a receiver addressed by a local name.",
            field=field,
            value=redact_url(url),
        ) from None
    if not found:
        raise ConfigurationError(
            f"`{field}` = {redact_url(url)!r}: host {host!r} resolved to no address.", field=field, value=redact_url(url)
        )
    return found


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo): a
    translator on the path would deliver to them, so they must be public too."""
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found = [ip.ipv4_mapped] if ip.ipv4_mapped is not None else []
    if ip in _V4_COMPATIBLE or any(ip in net for net in _NAT64):
        found.append(low)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _require_public(address: str, host: str, field: str, url: str) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += _embedded_ipv4(ip)
    if all(c.is_global and not c.is_multicast for c in candidates):
        return
    via = "" if address == host else f" (host {host!r} resolves to {address})"
    raise ConfigurationError(
        f"`{field}` = {redact_url(url)!r} points at a non-public address{via}: loopback, private, "
        "link-local and reserved addresses are refused so a URL cannot reach into the "
        "orchestra's own network. Fix: use a public receiver, or pass `allow_private=True` "
        "if this internal receiver is intended.",
        field=field,
        value=redact_url(url),
    )
