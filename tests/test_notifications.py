"""Notification channels: e-mail to a local SMTP server, Slack and webhook to a local HTTP server."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pytest_httpserver import HTTPServer

from stellar_graph import ConfigurationError, OrchestraConfig, StellarOrchestra
from stellar_graph.events import EventHub
from stellar_graph.integrations import (
    DeliveryPolicy,
    EmailChannel,
    EmailChannelSettings,
    IntegrationsMixin,
    NotificationChannel,
    NotificationError,
    Notifier,
)
from stellar_graph.integrations._formatting import email_message, slack_payload, summarize
from stellar_graph.integrations.webhooks import verify_signature

EMERGENCY = {"type": "emergency", "message": "all agents unhealthy", "agents_down": 4}
SLACK_PATH = "/services/T000/B000/XXXXSECRET"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.replies: list[str] = []  # scripted replies to DATA, then "250"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.replies.pop(0) if self.replies else "250 Message accepted for delivery"
        if reply.startswith("250"):
            self.envelopes.append(envelope)
        return reply

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"smtp-pass-31"
        if ok:
            self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Collector]]:
    collector = Collector()
    # port=0 does not work: Controller.start() connects to the configured port to check it.
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=collector.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield controller, collector
    controller.stop()


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


class Facade(IntegrationsMixin):
    def __init__(self, channels: list[str]) -> None:
        self.config = OrchestraConfig.from_dict(
            {"emergency_protocols": {"notification_channels": channels}}
        )
        self.hub = EventHub()

    def on(self, event: str, handler: Any) -> None:
        self.hub.on(event, handler)


Orchestra = StellarOrchestra  # the facade includes IntegrationsMixin


def email_settings(controller: Controller, **extra: Any) -> dict[str, Any]:
    return {
        "host": controller.hostname,
        "port": controller.port,
        "sender": "orchestra@example.test",
        "recipients": ["ops@example.test", "oncall@example.test"],
        "starttls": False,
        **extra,
    }


def parsed(envelope: Any) -> Any:
    return message_from_bytes(envelope.content, policy=default_policy)


@pytest.mark.slow
async def test_an_emergency_email_reaches_the_smtp_server(
    smtp: tuple[Controller, Collector],
) -> None:
    controller, collector = smtp
    facade = Facade(["email"])
    notifier = facade.configure_notifications({"email": email_settings(controller)})

    await facade.hub.emit(EMERGENCY)
    await facade.hub.emit({"type": "task_completed", "task_id": "t1"})  # not an alert: no mail
    assert await notifier.drain(10)

    (envelope,) = collector.envelopes
    assert envelope.mail_from == "orchestra@example.test"
    assert envelope.rcpt_tos == ["ops@example.test", "oncall@example.test"]
    mail = parsed(envelope)
    assert mail["Subject"] == "[stellar_graph] [CRITICAL] Emergency - all agents unhealthy"
    body = mail.get_content()
    assert "agents_down: 4" in body and '"message": "all agents unhealthy"' in body
    assert facade.integration_stats()["notifications"] == {
        "email": {"sent": 1, "failed": 0},
        "dropped": 0,
    }
    await facade.aclose_integrations()


@pytest.mark.slow
async def test_email_logs_in_with_credentials_from_the_environment(
    smtp: tuple[Controller, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, collector = smtp
    monkeypatch.setenv("SMTP_USER", "orchestra")
    monkeypatch.setenv("SMTP_PASS", "smtp-pass-31")
    channel = EmailChannel(
        EmailChannelSettings(
            **email_settings(controller, username_env="SMTP_USER", password_env="SMTP_PASS")
        )
    )
    await channel.send({"type": "agent_failure", "agent_id": "edison-001", "error": "timeout"})
    assert collector.logins == [(b"orchestra", b"smtp-pass-31")]
    assert (
        parsed(collector.envelopes[0])["Subject"]
        == "[stellar_graph] [WARNING] Agent failure: agent edison-001 - timeout"
    )


@pytest.mark.slow
async def test_email_retries_a_4xx_and_gives_up_on_a_5xx(
    smtp: tuple[Controller, Collector],
) -> None:
    controller, collector = smtp
    channel = EmailChannel(
        EmailChannelSettings(**email_settings(controller)),
        policy=DeliveryPolicy(max_attempts=3, backoff_seconds=0),
    )
    collector.replies = ["451 4.3.0 try again later"]
    await channel.send(EMERGENCY)
    assert len(collector.envelopes) == 1 and collector.replies == []

    collector.replies = ["554 5.7.1 rejected by policy", "250 OK"]
    with pytest.raises(
        NotificationError,
        match=r"failed after 1 attempt\(s\): SMTPDataError: 554 5.7.1 rejected by policy",
    ):
        await channel.send(EMERGENCY)
    assert len(collector.envelopes) == 1 and collector.replies == ["250 OK"]  # not retried


@pytest.mark.slow
async def test_slack_webhook_and_email_all_receive_one_emergency(
    httpserver: HTTPServer, smtp: tuple[Controller, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, collector = smtp
    monkeypatch.setenv("STELLAR_GRAPH_SLACK_WEBHOOK_URL", httpserver.url_for(SLACK_PATH))
    monkeypatch.setenv("STELLAR_GRAPH_WEBHOOK_SECRET", "notify-secret")
    httpserver.expect_request(SLACK_PATH, method="POST").respond_with_data("ok")
    httpserver.expect_request("/ops-hook", method="POST").respond_with_data("ok")
    facade = Facade(["slack", "webhook", "email"])
    notifier = facade.configure_notifications(
        slack={"allow_private": True},
        webhook={"url": httpserver.url_for("/ops-hook"), "allow_private": True},
        email=email_settings(controller),
    )

    await facade.hub.emit(EMERGENCY)
    assert await notifier.drain(10)

    requests = {req.path: req for req, _ in httpserver.log}
    slack = requests[SLACK_PATH].get_json()
    assert slack["text"] == "[CRITICAL] Emergency - all agents unhealthy"
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]
    assert slack["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "[CRITICAL] Emergency - all agents unhealthy",
    }
    assert {"type": "mrkdwn", "text": "*agents_down*\n4"} in slack["blocks"][1]["fields"]
    hook = requests["/ops-hook"]
    assert json.loads(hook.get_data())["data"] == EMERGENCY
    assert verify_signature("notify-secret", hook.get_data(), dict(hook.headers))
    assert len(collector.envelopes) == 1
    assert notifier.stats == {
        "slack": {"sent": 1, "failed": 0},
        "webhook": {"sent": 1, "failed": 0},
        "email": {"sent": 1, "failed": 0},
        "dropped": 0,
    }
    assert SLACK_PATH not in repr(notifier.channels)  # the Slack URL is a credential
    await facade.aclose_integrations()


@pytest.mark.slow
async def test_a_failing_channel_is_counted_and_does_not_stop_the_others(
    httpserver: HTTPServer,
    smtp: tuple[Controller, Collector],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, collector = smtp
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("STELLAR_GRAPH_SLACK_WEBHOOK_URL", httpserver.url_for(SLACK_PATH))
    httpserver.expect_request(SLACK_PATH).respond_with_data("no_service", status=500)
    facade = Facade(["slack", "email"])
    notifier = facade.configure_notifications(
        {"slack": {"allow_private": True}, "email": email_settings(controller)},
        max_attempts=2,
        backoff_seconds=0,
    )
    await facade.hub.emit({"type": "system_alert", "message": "queue backlog"})
    assert await notifier.drain(10)

    assert notifier.stats == {
        "slack": {"sent": 0, "failed": 1},
        "email": {"sent": 1, "failed": 0},
        "dropped": 0,
    }
    assert len(httpserver.log) == 2 and len(collector.envelopes) == 1
    assert "slack notification for system_alert failed" in caplog.text
    # The Slack URL is a credential: our side (httpx included) logs it by host only.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any("httpcore" in r.name for r in caplog.records)  # DEBUG really was captured
    assert not [m for m in ours if "XXXXSECRET" in m]


@pytest.mark.slow
async def test_an_unreachable_smtp_server_is_retried_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = EmailChannelSettings(
        host="127.0.0.1",
        port=free_port(),
        sender="a@example.test",
        recipients=("b@example.test",),
        starttls=False,
        timeout_seconds=2,
    )
    notifier = Notifier(
        [EmailChannel(settings, policy=DeliveryPolicy(max_attempts=3, backoff_seconds=0.01))],
        events=["*"],
    )
    outcome = await notifier.notify({"type": "task_failed", "task_id": "t3"})
    assert outcome == {"email": False}
    assert notifier.stats["email"] == {"sent": 0, "failed": 1}
    assert "failed after 3 attempt(s): ConnectionRefusedError" in caplog.text


@pytest.mark.slow
async def test_a_real_run_notifies_by_email(
    smtp: tuple[Controller, Collector], fixed_clock
) -> None:
    controller, collector = smtp
    config = {
        "persistence": {"backend": "memory"},
        "emergency_protocols": {"notification_channels": ["email"]},
    }
    async with Orchestra(config, clock=fixed_clock) as orchestra:
        notifier = orchestra.configure_notifications(
            email=email_settings(controller), events=["task_completed", "task_failed"]
        )
        await orchestra.register_agent(
            {
                "agent_id": "lilith-001",
                "agent_type": "LilithAgent",
                "specializations": ["risk_analysis"],
            }
        )
        allocation = await orchestra.orchestrate_task(
            {
                "id": "review-1",
                "description": "Red-team the plan",
                "required_skills": ["risk_analysis"],
            }
        )
        execution = await orchestra.monitor_task_execution(allocation.allocation_id)
        assert await notifier.drain(10)
        await orchestra.aclose_integrations()

    (envelope,) = collector.envelopes
    status = execution["status"]
    assert parsed(envelope)["Subject"].startswith(
        f"[stellar_graph] [{'INFO' if status == 'completed' else 'WARNING'}] Task {status}: task review-1"
    )


class Recording(NotificationChannel):
    name = "recording"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def send(self, event: Any) -> None:
        self.events.append(dict(event))


class Broken(NotificationChannel):
    name = "broken"

    async def send(self, event: Any) -> None:
        raise RuntimeError("boom")


async def test_custom_channels_and_the_event_filter() -> None:
    recording = Recording()
    notifier = Notifier([Broken(), recording], events=["emergency"])
    assert notifier.handle({"type": "task_completed"}) == 0
    assert notifier.handle(EMERGENCY) == 2
    assert await notifier.drain(5)
    assert recording.events == [EMERGENCY]
    assert notifier.stats == {
        "broken": {"sent": 0, "failed": 1},
        "recording": {"sent": 1, "failed": 0},
        "dropped": 0,
    }


def test_handling_outside_an_event_loop_drops_and_counts() -> None:
    notifier = Notifier([Recording()])
    assert notifier.handle(EMERGENCY) == 0
    assert notifier.stats["dropped"] == 1


@pytest.mark.parametrize(
    ("channels", "settings", "field", "fragment"),
    [
        ([], {}, "emergency_protocols.notification_channels", "is empty"),
        (
            ["slack"],
            {},
            "emergency_protocols.notification_channels",
            "lists 'slack' but no `slack` settings",
        ),
        (
            ["email"],
            {"email": {"host": "h", "sender": "a@x", "recipients": ["b@x"]}, "slack": {}},
            "emergency_protocols.notification_channels",
            "for ['slack'] were given",
        ),
        (
            ["email"],
            {"email": {"host": "h", "sender": "a@x", "recipients": []}},
            "notifications.email.recipients",
            "at least 1 item",
        ),
        (
            ["email"],
            {"email": {"host": "h", "sender": "a@x\r\nBcc: all@x", "recipients": ["b@x"]}},
            "notifications.email.sender",
            "not a single e-mail address",
        ),
        (
            ["email"],
            {"email": {"host": "h", "sender": "a@x", "recipients": ["b@x"], "use_ssl": True}},
            "notifications.email",
            "`starttls` or `use_ssl`",
        ),
        (
            ["email"],
            {
                "email": {"host": "h", "sender": "a@x", "recipients": ["b@x"]},
                "events": ["meltdown"],
            },
            "notifications.events",
            "unknown event type(s) ['meltdown']",
        ),
        (
            ["email"],
            {"email": {"host": "h", "sender": "a@x", "recipients": ["b@x"], "pasword": "x"}},
            "notifications.email.pasword",
            "unknown key",
        ),
        (
            ["slack"],
            {"slack": {}},
            "notifications.slack.url_env",
            "STELLAR_GRAPH_SLACK_WEBHOOK_URL, which is not set",
        ),
        (
            ["webhook"],
            {"webhook": {"url": "http://10.0.0.8/hook"}},
            "notifications.webhook.url",
            "non-public address",
        ),
        (
            ["webhook"],
            {"webhook": {"url": "http://127.0.0.1:9/hook", "allow_private": True}},
            "notifications.webhook.secret_env",
            "STELLAR_GRAPH_WEBHOOK_SECRET, which is not set",
        ),
    ],
)
def test_configuration_mistakes_name_the_field_and_fix(
    channels: list[str],
    settings: dict[str, Any],
    field: str,
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STELLAR_GRAPH_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("STELLAR_GRAPH_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigurationError) as info:
        Facade(channels).configure_notifications(settings)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_event_text_is_escaped_and_kept_on_one_line() -> None:
    event = {
        "type": "system_alert",
        "message": "load <high> & rising\r\nBcc: everyone@example.test",
        "agent_id": "atlas-001",
    }
    summary = summarize(event)
    assert summary.severity == "warning"
    assert (
        summary.title
        == "System alert: agent atlas-001 - load <high> & rising Bcc: everyone@example.test"
    )
    slack = slack_payload(summary)
    assert (
        slack["text"]
        == "[WARNING] System alert: agent atlas-001 - load &lt;high&gt; &amp; rising Bcc: everyone@example.test"
    )
    mail = email_message(summary, event, sender="a@example.test", recipients=["b@example.test"])
    assert "\n" not in mail["Subject"] and mail["Bcc"] is None
    assert (
        summarize({"type": "task_completed", "task_id": "t1", "severity": "info"}).title
        == "Task completed: task t1"
    )


def test_a_refused_slack_url_never_appears_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Slack incoming-webhook URL is a credential (issue 14: it appeared in full in errors)."""
    from stellar_graph.integrations.notifications import SlackChannel
    from stellar_graph.integrations.settings import SlackChannelSettings

    secret_path = "/services/T000/B000/XXXXsecretXXXX"
    monkeypatch.setenv("SLACK_HOOK_TEST", f"http://10.0.0.7{secret_path}")
    settings = SlackChannelSettings(url_env="SLACK_HOOK_TEST")
    with pytest.raises(ConfigurationError) as caught:
        SlackChannel(settings)
    assert "secret" not in str(caught.value) and "secret" not in str(caught.value.value)
    assert "10.0.0.7" in str(caught.value)  # the host is shown: enough to find the setting
