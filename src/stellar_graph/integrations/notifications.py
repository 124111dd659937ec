"""Notification channels for ``emergency_protocols.notification_channels``: webhook, Slack, e-mail.

A :class:`Notifier` fans an event out to its channels in the background. A channel that fails is
logged and counted; nothing is ever raised into orchestration.

Example::

    notifier = Notifier([EmailChannel(EmailChannelSettings(
        host="smtp.example.com", sender="orchestra@example.com", recipients=["ops@example.com"]))])
    orchestra.on("*", notifier.handle)   # schedules and returns at once
    ...
    await notifier.aclose()              # on shutdown: flush, then close
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, ClassVar

from stellar_graph.errors import ConfigurationError, OrchestrationError
from stellar_graph.integrations._background import BackgroundTasks
from stellar_graph.integrations._formatting import email_message, slack_payload, summarize
from stellar_graph.integrations._urls import (
    Resolver,
    check_outbound_url,
    redact_url,
    system_resolver,
)
from stellar_graph.integrations.settings import (
    DEFAULT_NOTIFY_EVENTS,
    EmailChannelSettings,
    NotificationSettings,
    SlackChannelSettings,
    WebhookChannelSettings,
)
from stellar_graph.integrations.webhooks import DeliveryPolicy, WebhookDispatcher, encode_event

__all__ = [
    "EmailChannel",
    "NotificationChannel",
    "NotificationError",
    "Notifier",
    "SlackChannel",
    "WebhookChannel",
    "build_channels",
]

logger = logging.getLogger(__name__)


class NotificationError(OrchestrationError):
    """A channel could not deliver a notification (counted by the :class:`Notifier`)."""


class NotificationChannel(ABC):
    """Where notifications go. Subclasses implement :meth:`send` and may override :meth:`aclose`.

    Attributes:
        name: the channel's key in the notifier's stats.
    """

    name: ClassVar[str] = "channel"

    @abstractmethod
    async def send(self, event: Mapping[str, Any]) -> None:
        """Deliver one event.

        Raises:
            NotificationError: delivery failed (after the channel's own retries).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections (nothing by default)."""


class _HTTPChannel(NotificationChannel):
    """Shared delivery for channels that POST JSON: retries, timeouts, no redirects."""

    def __init__(
        self, url: str, *, secret_env: str | None, policy: DeliveryPolicy | None, allow_private: bool, resolve: Resolver
    ) -> None:
        self._url = url
        self._dispatcher = WebhookDispatcher(
            secret_env=secret_env, policy=policy, allow_private=allow_private, resolve=resolve
        )

    async def _post(self, event: Mapping[str, Any], body: bytes | None = None) -> None:
        delivery_id, envelope = encode_event(event)
        ok = await self._dispatcher.deliver(
            self._url, body or envelope, event_type=str(event.get("type")), delivery_id=delivery_id
        )
        if not ok:
            raise NotificationError(
                f"{self.name} notification to {redact_url(self._url)} failed (see the warning logged above)"
            )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._dispatcher.aclose(grace_seconds=0)

    def __repr__(self) -> str:  # the URL may hold a token (Slack's does)
        return f"{type(self).__name__}({redact_url(self._url)})"


class WebhookChannel(_HTTPChannel):
    """POSTs the signed event envelope of :mod:`~stellar_graph.integrations.webhooks`.

    Args:
        settings: URL, secret variable and whether private receivers are allowed.
        policy: timeout and retries.
        resolve: host resolver for the address check.

    Raises:
        ConfigurationError: the URL is refused, or the secret variable is unset.
    """

    name = "webhook"

    def __init__(
        self,
        settings: WebhookChannelSettings,
        *,
        policy: DeliveryPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        url = check_outbound_url(
            settings.url,
            field="notifications.webhook.url",
            allow_private=settings.allow_private,
            resolve=resolve,
        )
        if settings.secret_env is not None and not os.environ.get(settings.secret_env):
            raise ConfigurationError(
                f"Webhook notifications are signed with environment variable {settings.secret_env}, "
                f"which is not set. Fix: export {settings.secret_env}=<secret shared with the "
                "receiver>, or set `secret_env: null` to send unsigned requests.",
                field="notifications.webhook.secret_env",
                value=settings.secret_env,
            )
        super().__init__(url, secret_env=settings.secret_env, policy=policy, allow_private=settings.allow_private,
                         resolve=resolve)

    async def send(self, event: Mapping[str, Any]) -> None:
        """POST the event."""
        await self._post(event)


class SlackChannel(_HTTPChannel):
    """Posts to a Slack incoming webhook (``{"text": ..., "blocks": [...]}``).

    The webhook URL is itself a credential, so it is read from an environment variable.

    Args:
        settings: the variable holding the URL, and whether private receivers are allowed.
        policy: timeout and retries.
        resolve: host resolver for the address check.

    Raises:
        ConfigurationError: the variable is unset or the URL is refused.
    """

    name = "slack"

    def __init__(
        self,
        settings: SlackChannelSettings,
        *,
        policy: DeliveryPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        url = os.environ.get(settings.url_env, "")
        if not url:
            raise ConfigurationError(
                f"Slack notifications need the incoming-webhook URL in environment variable "
                f"{settings.url_env}, which is not set. Fix: export {settings.url_env}=https://hooks.slack.com/services/...",
                field="notifications.slack.url_env",
                value=settings.url_env,
            )
        field = f"notifications.slack.url_env ({settings.url_env})"
        check_outbound_url(url, field=field, allow_private=settings.allow_private, resolve=resolve)
        super().__init__(url, secret_env=None, policy=policy, allow_private=settings.allow_private, resolve=resolve)

    async def send(self, event: Mapping[str, Any]) -> None:
        """POST the Slack message."""
        await self._post(event, json.dumps(slack_payload(summarize(event))).encode())


class EmailChannel(NotificationChannel):
    """Sends a plain-text e-mail through SMTP (in a worker thread; smtplib blocks).

    Args:
        settings: server, sender, recipients, TLS mode and credential variables.
        policy: attempts and backoff (``timeout_seconds`` of the settings bounds each socket wait).
    """

    name = "email"

    def __init__(
        self, settings: EmailChannelSettings, *, policy: DeliveryPolicy | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy or DeliveryPolicy(max_attempts=3)

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send the e-mail, retrying transient SMTP failures."""
        s = self.settings
        message = email_message(
            summarize(event), event, sender=s.sender, recipients=list(s.recipients)
        )
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                await asyncio.to_thread(self._send_sync, message)
                logger.debug(
                    "email notification %s sent via %s:%d", event.get("type"), s.host, s.port
                )
                return
            except (smtplib.SMTPException, OSError) as exc:
                if not _transient(exc) or attempt == self.policy.max_attempts:
                    raise NotificationError(
                        f"email via {s.host}:{s.port} failed after {attempt} attempt(s): {type(exc).__name__}: {_smtp_reason(exc)}"
                    ) from None
                await asyncio.sleep(self.policy.backoff(attempt))

    def _send_sync(self, message: EmailMessage) -> None:
        s = self.settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.use_ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        with smtp:
            if s.starttls and not s.use_ssl:
                smtp.starttls(context=context)
            if s.username_env:
                # Read at send time and never kept: a rotated password works without a restart.
                smtp.login(
                    os.environ.get(s.username_env, ""), os.environ.get(s.password_env or "", "")
                )
            smtp.send_message(message)

    def __repr__(self) -> str:
        return f"EmailChannel({self.settings.host}:{self.settings.port})"


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPNotSupportedError):
        return False
    return isinstance(exc, OSError)  # connection refused/reset, timeouts, server disconnects


def _smtp_reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{exc.smtp_code} {error}"
    return str(exc)


class Notifier:
    """Fans events out to notification channels in the background; never raises.

    Args:
        channels: where notifications go.
        events: the event types that notify (``"*"`` for all).
        max_pending: notifications in flight; more are dropped and counted.

    Attributes:
        stats: per channel ``{"sent": n, "failed": n}``, plus ``dropped``.
    """

    def __init__(
        self,
        channels: Sequence[NotificationChannel],
        *,
        events: Collection[str] = DEFAULT_NOTIFY_EVENTS,
        max_pending: int = 1000,
    ) -> None:
        self.channels = tuple(channels)
        self.events = frozenset(events)
        self.stats: dict[str, Any] = {c.name: {"sent": 0, "failed": 0} for c in self.channels}
        self.stats["dropped"] = 0
        self._tasks = BackgroundTasks("stellar-notify", max_pending=max_pending)

    @property
    def pending(self) -> int:
        """Notifications in flight."""
        return self._tasks.pending

    def handle(self, event: Mapping[str, Any]) -> int:
        """Schedule one delivery per channel if the event's type notifies; return how many.

        Usable directly as an ``orchestra.on("*", ...)`` handler: it never blocks and never raises.
        """
        if "*" not in self.events and event.get("type") not in self.events:
            return 0
        scheduled = 0
        for channel in self.channels:
            if self._tasks.spawn(
                self._one(channel, dict(event)), on_cancel=self._cancelled(channel)
            ):
                scheduled += 1
                continue
            self.stats["dropped"] += 1
            logger.warning(
                "%s notification for %s dropped: %d in flight or no running loop",
                channel.name,
                event.get("type"),
                self.pending,
            )
        return scheduled

    async def notify(self, event: Mapping[str, Any]) -> dict[str, bool]:
        """Send ``event`` to every channel at once; return channel name -> delivered."""
        results = await asyncio.gather(*(self._one(c, event) for c in self.channels))
        return {c.name: ok for c, ok in zip(self.channels, results, strict=True)}

    async def drain(self, max_seconds: float | None = None) -> bool:
        """Wait for notifications in flight; True if all finished within ``max_seconds``."""
        return await self._tasks.drain(max_seconds)

    async def aclose(self, grace_seconds: float | None = 5.0) -> None:
        """Drain for up to ``grace_seconds``, cancel the rest, close the channels."""
        if not await self._tasks.drain(grace_seconds):
            logger.warning(
                "notifications: %d still in flight at close were cancelled",
                await self._tasks.cancel(),
            )
        for channel in self.channels:
            await channel.aclose()

    def _cancelled(self, channel: NotificationChannel) -> Callable[[], None]:
        def count() -> None:
            self.stats[channel.name]["failed"] += 1
            logger.warning("%s notification cancelled before delivery", channel.name)

        return count

    async def _one(self, channel: NotificationChannel, event: Mapping[str, Any]) -> bool:
        try:
            await channel.send(event)
        except Exception as exc:  # a broken channel must never break orchestration
            self.stats[channel.name]["failed"] += 1
            logger.warning(
                "%s notification for %s failed: %s", channel.name, event.get("type"), exc
            )
            return False
        self.stats[channel.name]["sent"] += 1
        return True


def build_channels(
    names: Sequence[str],
    settings: NotificationSettings,
    *,
    resolve: Resolver = system_resolver,
) -> list[NotificationChannel]:
    """The channels named in ``emergency_protocols.notification_channels``, from their settings.

    Raises:
        ConfigurationError: a named channel has no settings, settings are given for a channel
            that is not named, or a channel's own check fails.
    """
    policy = settings.policy()
    given = {n for n in ("webhook", "slack", "email") if getattr(settings, n) is not None}
    for name in names:
        if name not in given:
            raise ConfigurationError(
                f"`emergency_protocols.notification_channels` lists {name!r} but no `{name}` settings were "
                f"given. Fix: pass `configure_notifications({{'{name}': {{...}}}})`, or remove {name!r} from the list.",
                field="emergency_protocols.notification_channels",
                value=list(names),
            )
    unused = sorted(given - set(names))
    if unused:
        raise ConfigurationError(
            f"Notification settings for {unused} were given but `emergency_protocols.notification_channels` "
            f"= {list(names)!r} does not list them. Fix: add them to the list, or drop their settings.",
            field="emergency_protocols.notification_channels",
            value=list(names),
        )
    channels: list[NotificationChannel] = []
    for name in dict.fromkeys(names):
        if name == "webhook" and settings.webhook is not None:
            channels.append(WebhookChannel(settings.webhook, policy=policy, resolve=resolve))
        elif name == "slack" and settings.slack is not None:
            channels.append(SlackChannel(settings.slack, policy=policy, resolve=resolve))
        elif name == "email" and settings.email is not None:
            channels.append(EmailChannel(settings.email, policy=policy))
    return channels
