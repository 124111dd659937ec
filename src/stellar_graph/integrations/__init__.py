"""Integrations: signed webhooks, external HTTP APIs as agent tools, notification channels.

The facade methods live in :class:`IntegrationsMixin`; the parts are usable on their own:

- :mod:`.webhooks`: :class:`WebhookDispatcher`, :func:`sign_payload`, :func:`verify_signature`;
- :mod:`.external_api`: :func:`create_external_api_tool` and its :class:`TokenBucket`;
- :mod:`.notifications`: :class:`Notifier` with :class:`WebhookChannel`,
  :class:`SlackChannel` and :class:`EmailChannel`.

See ``docs/integrations.md``.
"""

from __future__ import annotations

from stellar_graph.integrations.external_api import (
    ExternalAPIClient,
    ExternalAPISpec,
    create_external_api_tool,
)
from stellar_graph.integrations.facade import IntegrationsMixin
from stellar_graph.integrations.notifications import (
    EmailChannel,
    NotificationChannel,
    NotificationError,
    Notifier,
    SlackChannel,
    WebhookChannel,
)
from stellar_graph.integrations.ratelimit import RateLimitExceeded, TokenBucket
from stellar_graph.integrations.settings import (
    EmailChannelSettings,
    NotificationSettings,
    SlackChannelSettings,
    WebhookChannelSettings,
)
from stellar_graph.integrations.webhooks import (
    DeliveryPolicy,
    DeliveryStats,
    WebhookDispatcher,
    sign_payload,
    verify_signature,
)

__all__ = [
    "DeliveryPolicy",
    "DeliveryStats",
    "EmailChannel",
    "EmailChannelSettings",
    "ExternalAPIClient",
    "ExternalAPISpec",
    "IntegrationsMixin",
    "NotificationChannel",
    "NotificationError",
    "NotificationSettings",
    "Notifier",
    "RateLimitExceeded",
    "SlackChannel",
    "SlackChannelSettings",
    "TokenBucket",
    "WebhookChannel",
    "WebhookChannelSettings",
    "WebhookDispatcher",
    "create_external_api_tool",
    "sign_payload",
    "verify_signature",
]
