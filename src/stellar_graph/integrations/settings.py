"""Settings of the notification channels (validated; accepted as models or plain dicts).

``OrchestraConfig.emergency_protocols.notification_channels`` says *which* channels notify;
these settings say *where*: the webhook URL, the Slack URL's environment variable, the SMTP
server. Secrets are never settings: only the names of the environment variables holding them.

Example:
    >>> settings = NotificationSettings.load({"email": {"host": "smtp.example.com",
    ...     "sender": "orchestra@example.com", "recipients": ["ops@example.com"]}})
    >>> settings.email.port
    587
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stellar_graph.errors import ConfigurationError
from stellar_graph.events import EVENT_TYPES
from stellar_graph.integrations.webhooks import DEFAULT_SECRET_ENV, DeliveryPolicy

__all__ = [
    "DEFAULT_NOTIFY_EVENTS",
    "DEFAULT_SLACK_URL_ENV",
    "EmailChannelSettings",
    "NotificationSettings",
    "SlackChannelSettings",
    "WebhookChannelSettings",
]

DEFAULT_NOTIFY_EVENTS: tuple[str, ...] = ("emergency", "system_alert", "agent_failure")
DEFAULT_SLACK_URL_ENV = "STELLAR_GRAPH_SLACK_WEBHOOK_URL"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannelSettings(_Settings):
    """The ``webhook`` channel: a signed POST of the event envelope."""

    url: str
    """The receiver (http or https)."""
    secret_env: str | None = DEFAULT_SECRET_ENV
    """Environment variable holding the signing secret; ``None`` sends unsigned requests."""
    allow_private: bool = False
    """Accept loopback and private receivers."""


class SlackChannelSettings(_Settings):
    """The ``slack`` channel: a Slack incoming webhook."""

    url_env: str = DEFAULT_SLACK_URL_ENV
    """Environment variable holding the incoming-webhook URL (the URL is a credential)."""
    allow_private: bool = False
    """Accept loopback and private receivers (tests, self-hosted relays)."""


class EmailChannelSettings(_Settings):
    """The ``email`` channel: SMTP to a configured server."""

    host: str = Field(min_length=1)
    """SMTP server host."""
    port: int = Field(default=587, ge=1, le=65535)
    """SMTP port (587 submission with STARTTLS, 465 implicit TLS, 25 relay)."""
    sender: str
    """The ``From`` address."""
    recipients: tuple[str, ...] = Field(min_length=1)
    """The ``To`` addresses."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS before sending."""
    use_ssl: bool = False
    """Connect with implicit TLS (port 465) instead."""
    username_env: str | None = None
    """Environment variable holding the SMTP user name (no login when unset)."""
    password_env: str | None = None
    """Environment variable holding the SMTP password."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Limit of each socket operation."""

    @field_validator("sender", "recipients")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        for address in [value] if isinstance(value, str) else value:
            if "@" not in address or any(c in address for c in "\r\n,"):
                raise ValueError(f"{address!r} is not a single e-mail address")
        return value

    @model_validator(mode="after")
    def _tls(self) -> EmailChannelSettings:
        if self.starttls and self.use_ssl:
            raise ValueError("choose `starttls` or `use_ssl`, not both")
        if self.password_env and not self.username_env:
            raise ValueError("`password_env` needs `username_env` too")
        return self


class NotificationSettings(_Settings):
    """Settings of every channel, which events notify, and the delivery schedule."""

    webhook: WebhookChannelSettings | None = None
    slack: SlackChannelSettings | None = None
    email: EmailChannelSettings | None = None
    events: tuple[str, ...] = DEFAULT_NOTIFY_EVENTS
    """Event types that notify (``"*"`` for all)."""
    timeout_seconds: float = Field(default=5.0, gt=0)
    """Limit of one HTTP attempt (webhook, Slack)."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts per notification and channel."""
    backoff_seconds: float = Field(default=0.5, ge=0)
    """Wait before the first retry; doubles after each."""

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; allowed: {sorted(EVENT_TYPES)}")
        return value

    def policy(self) -> DeliveryPolicy:
        """The delivery schedule as a :class:`DeliveryPolicy`."""
        return DeliveryPolicy(
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    @classmethod
    def load(
        cls, source: NotificationSettings | Mapping[str, Any] | None = None, **overrides: Any
    ) -> NotificationSettings:
        """Accept settings, a dict or keyword arguments.

        Raises:
            ConfigurationError: an unknown key or a bad value, named by its dotted path.
        """
        if isinstance(source, NotificationSettings) and not overrides:
            return source
        data = (
            source.model_dump() if isinstance(source, NotificationSettings) else dict(source or {})
        )
        try:
            return cls.model_validate({**data, **overrides})
        except ValidationError as exc:
            err = exc.errors()[0]
            path = "notifications." + ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            raise ConfigurationError(
                f"Invalid notification settings: `{path}` = {err.get('input')!r}: {msg} "
                f"({len(exc.errors())} problem(s) in all). Fix the key named above.",
                field=path,
                value=err.get("input"),
            ) from None
