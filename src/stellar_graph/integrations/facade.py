"""`IntegrationsMixin`: webhooks, external API tools and notifications on the orchestra facade.

The mixin needs only two members of the class it is mixed into: ``on(event_type, handler)``
(the facade's event hub) and ``config`` (an :class:`~stellar_graph.config.OrchestraConfig`).

Example (the seed's calls, in Python)::

    async with StellarOrchestra() as orchestra:
        await orchestra.integrate_external_api({
            "name": "research_database", "endpoint": "https://api.research.org",
            "authentication": "bearer_token", "rate_limits": {"requests_per_minute": 100}})
        orchestra.configure_webhooks({
            "task_completion": "https://webhook.example.com/tasks",
            "system_alerts": "https://webhook.example.com/alerts"})
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from stellar_graph.errors import ConfigurationError
from stellar_graph.integrations.external_api import (
    ExternalAPIClient,
    ExternalAPISpec,
    require_credential,
)
from stellar_graph.integrations.notifications import Notifier, build_channels
from stellar_graph.integrations.settings import NotificationSettings
from stellar_graph.integrations.webhooks import (
    DEFAULT_SECRET_ENV,
    DeliveryPolicy,
    WebhookDispatcher,
    build_routes,
)

if TYPE_CHECKING:
    from stellar_graph.config import OrchestraConfig
    from stellar_graph.events import EventHandler

__all__ = ["IntegrationsMixin"]

logger = logging.getLogger(__name__)


@dataclass
class _Integrations:
    webhooks: WebhookDispatcher | None = None
    notifier: Notifier | None = None
    retired: list[WebhookDispatcher | Notifier] = field(default_factory=list)
    apis: dict[str, ExternalAPIClient] = field(default_factory=dict)
    tools: dict[str, BaseTool] = field(default_factory=dict)
    listening: set[str] = field(default_factory=set)


class IntegrationsMixin:
    """Webhooks, external API tools and notification channels for the orchestra facade.

    Deliveries run in the background on the orchestra's event loop: an event handler only
    schedules them, so a slow or dead receiver never holds up orchestration. Call
    :meth:`aclose_integrations` on shutdown to flush what is in flight.
    """

    if TYPE_CHECKING:
        config: OrchestraConfig

        def on(self, event: str, handler: EventHandler) -> None: ...

    # -- webhooks --------------------------------------------------------------------------
    def configure_webhooks(
        self,
        endpoints: Mapping[str, str | None] | None = None,
        *,
        task_completion: str | None = None,
        system_alerts: str | None = None,
        secret_env: str | None = DEFAULT_SECRET_ENV,
        allow_private: bool = False,
        policy: DeliveryPolicy | None = None,
    ) -> WebhookDispatcher:
        """Post events to webhook URLs, signed with HMAC-SHA256.

        ``task_completion`` receives ``task_completed`` and ``task_failed``; ``system_alerts``
        receives ``system_alert``, ``emergency``, ``agent_failure`` and ``workload_imbalance``.
        ``endpoints`` (the seed's dict form) may also map a single event type to a URL. Calling
        again replaces the whole configuration.

        Args:
            endpoints: topic or event type -> URL (the seed's ``{task_completion: url, ...}``).
            task_completion: URL for finished tasks.
            system_alerts: URL for alerts and emergencies.
            secret_env: environment variable holding the signing secret (read at each send);
                ``None`` sends unsigned requests.
            allow_private: accept loopback and private receivers (refused by default).
            policy: timeout, attempts and backoff (default: 5 s, 4 attempts, 0.5 s doubling).

        Returns:
            The dispatcher (``stats``, ``drain()``).

        Raises:
            ConfigurationError: no URL, an unknown topic, a refused URL, or the secret variable
                is unset. The message names the field, the value and the fix.
        """
        merged = {**dict(endpoints or {})}
        merged.update(
            {
                k: v
                for k, v in {
                    "task_completion": task_completion,
                    "system_alerts": system_alerts,
                }.items()
                if v is not None
            }
        )
        if not any(merged.values()):
            raise ConfigurationError(
                "configure_webhooks() got no URL. Fix: pass `task_completion=` and/or `system_alerts=` (https URLs).",
                field="task_completion",
            )
        routes = build_routes(merged, allow_private=allow_private)
        if secret_env is not None and not os.environ.get(secret_env):
            raise ConfigurationError(
                f"Webhook signing secret variable {secret_env} is not set. Fix: export {secret_env}=<random secret "
                "shared with the receiver>, or pass `secret_env=None` to send unsigned requests.",
                field="secret_env",
                value=secret_env,
            )
        state = self._integrations()
        if state.webhooks is not None:
            state.retired.append(state.webhooks)
        state.webhooks = WebhookDispatcher(routes, secret_env=secret_env, policy=policy, allow_private=allow_private)
        self._listen("webhooks", self._integrations_webhook_event)
        logger.debug("webhooks configured for %s", sorted(routes))
        return state.webhooks

    # -- external APIs ---------------------------------------------------------------------
    async def integrate_external_api(
        self,
        name: str | Mapping[str, Any],
        endpoint: str | None = None,
        authentication: str | Mapping[str, Any] | None = None,
        rate_limits: Mapping[str, Any] | None = None,
        *,
        credential_env: str | None = None,
        description: str | None = None,
        timeout_seconds: float | None = None,
        allow_http: bool | None = None,
    ) -> BaseTool:
        """Make an external HTTP API a rate-limited tool that agents can call.

        Args:
            name: the tool name, or the seed's whole dict (``name``, ``endpoint``,
                ``authentication``, ``rate_limits``).
            endpoint: the base URL.
            authentication: ``bearer_token``, ``api_key_header``, ``none``, or a dict with
                ``type``, ``credential_env`` and ``header``.
            rate_limits: ``requests_per_minute`` and optionally ``burst`` and ``max_wait_seconds``.
            credential_env: environment variable holding the credential (default
                ``STELLAR_GRAPH_<NAME>_TOKEN``); only its name is kept.
            description: what agents read to decide when to call it.
            timeout_seconds: limit of one request (default 10).
            allow_http: allow a credential over plain http.

        Returns:
            The tool (also listed by :meth:`external_tools`).

        Raises:
            ConfigurationError: a bad setting, a name already registered, or an unset
                credential variable.
        """
        spec = ExternalAPISpec.from_seed(
            name, endpoint, authentication, rate_limits,
            credential_env=credential_env, description=description,
            timeout_seconds=timeout_seconds, allow_http=allow_http,
        )  # fmt: skip
        state = self._integrations()
        if spec.name in state.apis:
            raise ConfigurationError(
                f"External API {spec.name!r} is already integrated. Fix: choose another `name`.",
                field="name",
                value=spec.name,
            )
        require_credential(spec)
        client = ExternalAPIClient(spec)
        state.apis[spec.name] = client
        state.tools[spec.name] = client.as_tool()
        logger.debug(
            "external api %s integrated (%s, %g/min)",
            spec.name,
            spec.authentication,
            spec.requests_per_minute,
        )
        return state.tools[spec.name]

    def external_tools(self) -> list[BaseTool]:
        """The tools made by :meth:`integrate_external_api`, in registration order."""
        return list(self._integrations().tools.values())

    # -- notifications ---------------------------------------------------------------------
    def configure_notifications(
        self,
        settings: NotificationSettings | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Notifier:
        """Notify the channels of ``emergency_protocols.notification_channels`` about alerts.

        Args:
            settings: each channel's settings (:class:`NotificationSettings` or a dict with
                ``webhook``, ``slack``, ``email``, ``events``...).
            **overrides: the same keys as keyword arguments.

        Returns:
            The notifier (``stats``, ``drain()``).

        Raises:
            ConfigurationError: no channel is listed in the config, a listed channel has no
                settings (or the reverse), or a channel's settings are invalid.
        """
        names = list(self.config.emergency_protocols.notification_channels)
        if not names:
            raise ConfigurationError(
                "`emergency_protocols.notification_channels` is empty, so there is nothing to notify. "
                "Fix: list the channels in the config, e.g. ['email', 'slack', 'webhook'].",
                field="emergency_protocols.notification_channels",
                value=names,
            )
        parsed = NotificationSettings.load(settings, **overrides)
        channels = build_channels(names, parsed)
        state = self._integrations()
        if state.notifier is not None:
            state.retired.append(state.notifier)
        state.notifier = Notifier(channels, events=parsed.events)
        self._listen("notifications", self._integrations_notify_event)
        return state.notifier

    # -- lifecycle and stats ---------------------------------------------------------------
    def integration_stats(self) -> dict[str, Any]:
        """Delivery counters of webhooks and notifications, and calls per external API."""
        state = self._integrations()
        return {
            "webhooks": state.webhooks.stats_dict() if state.webhooks else None,
            "notifications": dict(state.notifier.stats) if state.notifier else None,
            "external_apis": {name: dict(client.stats) for name, client in state.apis.items()},
        }

    async def aclose_integrations(self, grace_seconds: float | None = 5.0) -> None:
        """Flush deliveries in flight (up to ``grace_seconds`` each), then close clients."""
        state = self._integrations()
        for part in [*state.retired, state.webhooks, state.notifier]:
            if part is not None:
                await part.aclose(grace_seconds)
        state.retired.clear()

    # -- internals -------------------------------------------------------------------------
    def _integrations(self) -> _Integrations:
        found = self.__dict__.get("_stellar_integrations")
        if found is None:
            found = self.__dict__["_stellar_integrations"] = _Integrations()
        return found

    def _listen(self, key: str, handler: EventHandler) -> None:
        state = self._integrations()
        if key not in state.listening:
            self.on("*", handler)
            state.listening.add(key)

    def _integrations_webhook_event(self, event: dict[str, Any]) -> None:
        dispatcher = self._integrations().webhooks
        if dispatcher is not None:
            dispatcher.handle(event)

    def _integrations_notify_event(self, event: dict[str, Any]) -> None:
        notifier = self._integrations().notifier
        if notifier is not None:
            notifier.handle(event)
