"""Signed webhook delivery: JSON events POSTed in the background, with timeouts and retries.

Every delivery is a JSON envelope ``{"id", "type", "created_at", "data"}`` signed as the
`Standard Webhooks <https://www.standardwebhooks.com>`_ specification says, so a receiver verifies
it with the ``standardwebhooks`` library (or any implementation of the spec)::

    webhook-id: 3f0c9a...                 (the event's idempotency key: the same on every retry)
    webhook-timestamp: 1764158400         (Unix seconds of this attempt)
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> [v1,<...> ...]
    X-Stellar-Event: task_completed

    from standardwebhooks import Webhook
    Webhook(secret).verify(request_body, request_headers)   # raises unless valid and fresh

The secret variable (``STELLAR_GRAPH_WEBHOOK_SECRET``) holds one secret, or several separated by
spaces while rotating: each delivery carries one signature per secret, so receivers holding the
old or the new one both verify it. A secret is ``whsec_`` + base64 (the spec's form, decoded); any
other string is used as its UTF-8 bytes (give the receiver ``Webhook(secret.encode())``).

Delivery never blocks the caller: :meth:`WebhookDispatcher.handle` schedules a task and returns.
Retries wait with exponential backoff and jitter, or as long as a receiver's ``Retry-After`` (in
seconds or an HTTP date) asks, up to ``max_backoff_seconds``. Failures are logged and counted
(:attr:`WebhookDispatcher.stats`), never raised.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stellar_graph.errors import ConfigurationError
from stellar_graph.events import EVENT_TYPES
from stellar_graph.integrations._background import BackgroundTasks
from stellar_graph.integrations._http import send
from stellar_graph.integrations._urls import (
    RefusedAddressError,
    Resolver,
    check_outbound_url,
    redact_url,
    system_resolver,
)

__all__ = [
    "DEFAULT_SECRET_ENV",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_TOPICS",
    "DeliveryPolicy",
    "DeliveryStats",
    "WebhookDispatcher",
    "build_routes",
    "encode_event",
    "sign_payload",
    "verify_signature",
]

logger = logging.getLogger(__name__)

DEFAULT_SECRET_ENV = "STELLAR_GRAPH_WEBHOOK_SECRET"
SIGNATURE_HEADER = "webhook-signature"
TIMESTAMP_HEADER = "webhook-timestamp"
DELIVERY_HEADER = "webhook-id"
EVENT_HEADER = "X-Stellar-Event"

WEBHOOK_TOPICS: Mapping[str, tuple[str, ...]] = {
    "task_completion": ("task_completed", "task_failed"),
    "system_alerts": ("system_alert", "emergency", "agent_failure", "workload_imbalance"),
}
"""The seed's webhook names and the event types each one receives."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeout and retry schedule of one delivery.

    Attributes:
        timeout_seconds: limit of one attempt, connection to last byte.
        max_attempts: attempts in all (1 = no retry).
        backoff_seconds: wait before the first retry; doubles after each retry.
        max_backoff_seconds: cap of one wait (also caps a receiver's ``Retry-After``).
        jitter: the share of each backoff drawn at random (``0.5``: between half and all of it),
            so receivers that failed together are not retried together.
    """

    timeout_seconds: float = 5.0
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0:
            raise ConfigurationError(
                f"`timeout_seconds` = {self.timeout_seconds!r} must be > 0.",
                field="timeout_seconds",
                value=self.timeout_seconds,
            )
        if not 1 <= self.max_attempts <= 20:
            raise ConfigurationError(
                f"`max_attempts` = {self.max_attempts!r} must be between 1 and 20.",
                field="max_attempts",
                value=self.max_attempts,
            )
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ConfigurationError(
                f"backoff must be >= 0, got {self.backoff_seconds!r} / {self.max_backoff_seconds!r}.",
                field="backoff_seconds",
                value=self.backoff_seconds,
            )

        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(
                f"`jitter` = {self.jitter!r} must be between 0 and 1.", field="jitter", value=self.jitter
            )

    def backoff(self, retry: int, retry_after: float | None = None, *, draw: float = 1.0) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): exponential with ``jitter``
        (``draw`` in [0, 1) picks where in the jittered range), or exactly ``retry_after``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_seconds)
        wait = min(self.backoff_seconds * 2.0 ** (retry - 1), self.max_backoff_seconds)
        return float(wait * (1 - self.jitter * draw))


@dataclass
class DeliveryStats:
    """Counters of a dispatcher.

    Attributes:
        sent: deliveries the receiver accepted (2xx).
        failed: deliveries given up (attempts exhausted, a 4xx, no secret, cancelled on close).
        retried: extra attempts made after a 5xx, a timeout or a connection error.
        dropped: events not scheduled at all (too many in flight, or no running event loop).
    """

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


def webhook_keys(value: str) -> list[Webhook]:
    """The signers for a secret variable's value: one per space-separated secret (rotation).

    Raises:
        ConfigurationError: a ``whsec_`` secret that is not base64.
    """
    keys = []
    for secret in value.split():
        if secret.startswith("whsec_"):
            try:
                base64.b64decode(secret.removeprefix("whsec_") + "==", validate=True)
            except binascii.Error:
                raise ConfigurationError(
                    "A webhook secret starting with 'whsec_' must continue in base64 (Standard Webhooks). "
                    "Fix: python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\"",
                    field="webhook secret",
                ) from None
            keys.append(Webhook(secret))
        else:
            keys.append(Webhook(secret.encode()))
    return keys


def sign_payload(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: a ``v1,<base64>`` signature per secret in ``secret``."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode()
    return " ".join(key.sign(delivery_id, when, text) for key in webhook_keys(secret))


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Check a delivery as a receiver does, with ``standardwebhooks`` (constant time, 5-minute
    timestamp tolerance). ``secret`` is one secret, in the same form as the sender's."""
    (key,) = webhook_keys(secret)
    try:
        key.verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def encode_event(event: Mapping[str, Any], *, delivery_id: str | None = None) -> tuple[str, bytes]:
    """The delivery id and the JSON envelope bytes of one event."""
    delivery_id = delivery_id or uuid.uuid4().hex
    envelope = {
        "id": delivery_id,
        "type": str(event.get("type", "event")),
        "created_at": datetime.now(UTC).isoformat(),
        "data": dict(event),
    }
    return delivery_id, json.dumps(
        envelope, default=str, separators=(",", ":"), sort_keys=True
    ).encode()


def build_routes(
    endpoints: Mapping[str, str | None],
    *,
    allow_private: bool = False,
    resolve: Resolver = system_resolver,
) -> dict[str, tuple[str, ...]]:
    """Check webhook URLs and map them to the event types they receive.

    Args:
        endpoints: seed topic (``task_completion``, ``system_alerts``) or event type -> URL;
            ``None`` values are skipped.
        allow_private: accept loopback and private receivers.
        resolve: host resolver for the address check.

    Returns:
        Event type -> URLs.

    Raises:
        ConfigurationError: an unknown topic, or a URL :func:`check_outbound_url` refuses.
    """
    routes: dict[str, list[str]] = {}
    for key, url in endpoints.items():
        if url is None:
            continue
        if key in WEBHOOK_TOPICS:
            types: tuple[str, ...] = WEBHOOK_TOPICS[key]
        elif key in EVENT_TYPES:
            types = (key,)
        else:
            allowed = sorted({*WEBHOOK_TOPICS, *EVENT_TYPES})
            raise ConfigurationError(
                f"Unknown webhook {key!r}. Fix: use one of {allowed}.", field=key, value=url
            )
        check_outbound_url(url, field=key, allow_private=allow_private, resolve=resolve)
        for event_type in types:
            if url not in routes.setdefault(event_type, []):
                routes[event_type].append(url)
    return {k: tuple(v) for k, v in routes.items()}


class WebhookDispatcher:
    """Posts events to webhook URLs in the background, signed, with timeouts and retries.

    Args:
        routes: event type -> URLs (``"*"`` for every event); see :func:`build_routes`.
        secret_env: environment variable holding the signing secret, read at each attempt;
            ``None`` sends unsigned requests.
        policy: timeout and retry schedule.
        max_pending: deliveries allowed in flight; more are dropped and counted.
        transport: the httpx transport to send through (default: a pooled
            ``httpx.AsyncHTTPTransport``, closed by :meth:`aclose`). Proxies from the
            environment are not applied.
        sleep: the backoff sleep (tests pass a fast one).

    Example::

        dispatcher = WebhookDispatcher(build_routes({"task_completion": "https://hooks.example.com/t"}))
        orchestra.on("*", dispatcher.handle)   # schedules and returns at once
        ...
        await dispatcher.aclose()              # on shutdown: flush, then close
    """

    def __init__(
        self,
        routes: Mapping[str, Sequence[str]] | None = None,
        *,
        secret_env: str | None = DEFAULT_SECRET_ENV,
        policy: DeliveryPolicy | None = None,
        max_pending: int = 1000,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        allow_private: bool = False,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.allow_private, self._resolve = allow_private, resolve
        self._random = (rng or random.Random()).random
        if secret_env is not None and os.environ.get(secret_env, "").strip():
            webhook_keys(os.environ[secret_env])  # a malformed secret fails here, not at every delivery
        self.routes: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (routes or {}).items()}
        self.secret_env = secret_env
        self.policy = policy or DeliveryPolicy()
        self.stats = DeliveryStats()
        self._tasks = BackgroundTasks("stellar-webhook", max_pending=max_pending)
        self._transport = transport
        self._owns_transport = transport is None
        self._sleep = sleep

    @property
    def pending(self) -> int:
        """Deliveries in flight."""
        return self._tasks.pending

    def stats_dict(self) -> dict[str, int]:
        """The counters plus ``pending``."""
        return {**asdict(self.stats), "pending": self.pending}

    def handle(self, event: Mapping[str, Any]) -> int:
        """Schedule the event for every URL routed to its type; return how many were scheduled.

        Usable directly as an ``orchestra.on("*", ...)`` handler: it never blocks and never raises.
        """
        urls = [*self.routes.get(str(event.get("type", "")), ()), *self.routes.get("*", ())]
        return sum(self.send(url, event) for url in dict.fromkeys(urls))

    def send(self, url: str, event: Mapping[str, Any]) -> bool:
        """Schedule one delivery of ``event`` to ``url``; False if it was dropped."""
        # The event's idempotency key (stable across a restart's redelivery) is the delivery id.
        delivery_id, body = encode_event(event, delivery_id=event.get("event_id"))
        event_type = str(event.get("type", "event"))

        def cancelled() -> None:
            self.stats.failed += 1
            logger.warning(
                "webhook %s %s to %s cancelled before delivery",
                event_type,
                delivery_id,
                redact_url(url),
            )

        coro = self.deliver(url, body, event_type=event_type, delivery_id=delivery_id)
        if self._tasks.spawn(coro, on_cancel=cancelled):
            return True
        self.stats.dropped += 1
        logger.warning(
            "webhook %s to %s dropped: %d deliveries in flight or no running loop",
            event.get("type"),
            redact_url(url),
            self.pending,
        )
        return False

    async def deliver(self, url: str, body: bytes, *, event_type: str, delivery_id: str) -> bool:
        """Deliver ``body`` now (with retries) and return whether the receiver accepted it."""
        ok = await self._attempts(url, body, event_type, delivery_id)
        if ok:
            self.stats.sent += 1
        else:
            self.stats.failed += 1
        return ok

    async def drain(self, max_seconds: float | None = None) -> bool:
        """Wait for in-flight deliveries; True if all finished within ``max_seconds``."""
        return await self._tasks.drain(max_seconds)

    async def aclose(self, grace_seconds: float | None = 5.0) -> None:
        """Drain for up to ``grace_seconds``, cancel what is left, close the HTTP client."""
        if not await self._tasks.drain(grace_seconds):
            cancelled = await self._tasks.cancel()
            logger.warning(
                "webhooks: %d deliveries still in flight at close were cancelled", cancelled
            )
        if self._transport is not None and self._owns_transport:
            await self._transport.aclose()
            self._transport = None

    # -- internals -------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport()
        return self._transport

    async def _attempts(self, url: str, body: bytes, event_type: str, delivery_id: str) -> bool:
        where = redact_url(url)
        for attempt in range(1, self.policy.max_attempts + 1):
            headers = self._headers(event_type, delivery_id, body)
            if headers is None:
                logger.warning(
                    "webhook %s to %s not sent: environment variable %s is not set",
                    event_type,
                    where,
                    self.secret_env,
                )
                return False
            retry, reason, retry_after = await self._attempt(url, body, headers)
            if reason is None:
                logger.debug(
                    "webhook %s %s delivered to %s (attempt %d)",
                    event_type,
                    delivery_id,
                    where,
                    attempt,
                )
                return True
            if not retry or attempt == self.policy.max_attempts:
                logger.warning(
                    "webhook %s %s to %s failed after %d attempt(s): %s",
                    event_type,
                    delivery_id,
                    where,
                    attempt,
                    reason,
                )
                return False
            self.stats.retried += 1
            wait = self.policy.backoff(attempt, retry_after, draw=self._random())
            logger.debug(
                "webhook %s to %s: %s, retry %d in %.2fs", event_type, where, reason, attempt, wait
            )
            await self._sleep(wait)
        return False  # not reached: the last attempt returns above

    def _headers(self, event_type: str, delivery_id: str, body: bytes) -> dict[str, str] | None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event_type,
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.secret_env is not None:
            secret = os.environ.get(self.secret_env, "")
            if not secret.strip():
                return None
            headers[SIGNATURE_HEADER] = sign_payload(secret, delivery_id, timestamp, body)
        return headers

    async def _attempt(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bool, str | None, float | None]:
        """One POST: ``(retryable, failure reason or None, Retry-After seconds)``."""
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                response = await send(
                    self._http(),
                    "POST",
                    url,
                    headers=headers,
                    timeout_seconds=self.policy.timeout_seconds,
                    content=body,
                    resolve=self._resolve,
                    allow_private=self.allow_private,
                )
        except RefusedAddressError as exc:  # DNS changed since the URL was checked: never sent
            return False, str(exc), None
        except (httpx.TimeoutException, TimeoutError):
            return True, f"no response within {self.policy.timeout_seconds}s", None
        except (httpx.TransportError, OSError) as exc:  # connection refused or reset, DNS failure
            return True, f"transport error {type(exc).__name__}", None
        status = response.status_code
        if 200 <= status < 300:
            return False, None, None
        if status >= 500 or status in {408, 429}:
            return True, f"HTTP {status}", _retry_after(response)
        note = "; redirects are not followed" if 300 <= status < 400 else ""
        return False, f"HTTP {status} (not retried{note})", None


def _retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """A receiver's ``Retry-After``: delay-seconds or an HTTP date (RFC 9110); ``None`` if absent or bad."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; anything else is not one
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
