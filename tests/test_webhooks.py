"""Webhooks against real local HTTP servers: signatures, retries, hanging receivers, refused URLs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from stellar_graph import ConfigurationError, OrchestraConfig, StellarOrchestra
from stellar_graph.events import EventHub
from stellar_graph.integrations import DeliveryPolicy, IntegrationsMixin, WebhookDispatcher
from stellar_graph.integrations._urls import redact_url
from stellar_graph.integrations.webhooks import build_routes, sign_payload, verify_signature

SECRET = "whsec_" + base64.b64encode(b"stellar-graph-test-secret-32-byte").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-secret-being-rotated-out-now!").decode()
FAST = DeliveryPolicy(timeout_seconds=5, max_attempts=3, backoff_seconds=0.01)
EVENT = {"type": "task_completed", "task_id": "t1", "agent_id": "atlas-001", "error": None}


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STELLAR_GRAPH_WEBHOOK_SECRET", SECRET)
    return SECRET


@pytest.fixture
def silent_socket() -> Iterator[socket.socket]:
    """Listens (the kernel completes handshakes) but never answers: a hanging receiver."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def url_of(sock: socket.socket, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}{path}"


class Facade(IntegrationsMixin):
    """The two members the mixin relies on, and a way to emit events."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = OrchestraConfig.load(config)
        self.hub = EventHub()

    def on(self, event: str, handler: Any) -> None:
        self.hub.on(event, handler)


Orchestra = StellarOrchestra  # the facade includes IntegrationsMixin


def independent_signature(body: bytes, delivery_id: str, timestamp: str, secret: str = SECRET) -> str:
    """The Standard Webhooks v1 signature, computed here by hand from the spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def receiver_verifies(request: Request, secret: str = SECRET) -> bool:
    """What a receiver does with the `standardwebhooks` library."""
    try:
        Webhook(secret).verify(request.get_data(), dict(request.headers), json_parse=False)
    except Exception:
        return False
    return True


@pytest.mark.slow
async def test_signed_delivery_verifies_at_the_receiver(
    httpserver: HTTPServer, secret: str
) -> None:
    def receiver(request: Request) -> Response:
        ok = receiver_verifies(request)
        return Response("ok" if ok else "bad signature", status=200 if ok else 401)

    httpserver.expect_request("/tasks", method="POST").respond_with_handler(receiver)
    facade = Facade()
    dispatcher = facade.configure_webhooks(
        task_completion=httpserver.url_for("/tasks"), allow_private=True, policy=FAST
    )

    await facade.hub.emit(EVENT)
    await facade.hub.emit(
        {"type": "task_allocated", "task_id": "t1"}
    )  # not routed to task_completion
    assert await dispatcher.drain(10)

    assert dispatcher.stats_dict() == {
        "sent": 1,
        "failed": 0,
        "retried": 0,
        "dropped": 0,
        "pending": 0,
    }
    ((request, response),) = httpserver.log
    assert response.status_code == 200
    envelope = json.loads(request.get_data())
    assert envelope["type"] == "task_completed" and envelope["data"] == EVENT
    assert request.headers["X-Stellar-Event"] == "task_completed"
    assert request.headers["webhook-id"] == envelope["id"]
    assert request.headers["Content-Type"] == "application/json"
    body, headers = request.get_data(), dict(request.headers)
    ts = headers["Webhook-Timestamp"]
    assert headers["Webhook-Signature"] == independent_signature(body, envelope["id"], ts)
    assert verify_signature(SECRET, body, headers)
    assert not verify_signature(OLD_SECRET, body, headers)
    assert not verify_signature(SECRET, body.replace(b"t1", b"t2"), headers)
    assert not verify_signature(SECRET, body, {**headers, "Webhook-Timestamp": str(int(ts) + 1)})  # signed
    stale = int(ts) - 301
    assert not verify_signature(SECRET, body, {
        **headers, "Webhook-Timestamp": str(stale),
        "Webhook-Signature": independent_signature(body, envelope["id"], str(stale)),
    })  # a correct signature, but older than the receiver's 5-minute tolerance
    await facade.aclose_integrations()


@pytest.mark.slow
async def test_a_500_is_retried_with_the_same_delivery(httpserver: HTTPServer, secret: str) -> None:
    httpserver.expect_oneshot_request("/alerts").respond_with_data("boom", status=500)
    httpserver.expect_request("/alerts").respond_with_data("ok")
    facade = Facade()
    dispatcher = facade.configure_webhooks(
        system_alerts=httpserver.url_for("/alerts"), allow_private=True, policy=FAST
    )

    await facade.hub.emit({"type": "emergency", "message": "all agents down"})
    assert await dispatcher.drain(10)

    assert dispatcher.stats_dict() == {
        "sent": 1,
        "failed": 0,
        "retried": 1,
        "dropped": 0,
        "pending": 0,
    }
    assert [resp.status_code for _, resp in httpserver.log] == [500, 200]
    first, second = (req for req, _ in httpserver.log)
    assert first.get_data() == second.get_data()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert receiver_verifies(second)
    await facade.aclose_integrations()


@pytest.mark.slow
async def test_retries_are_bounded_and_4xx_is_not_retried(
    httpserver: HTTPServer, secret: str
) -> None:
    httpserver.expect_request("/down").respond_with_data("down", status=503)
    httpserver.expect_request("/gone").respond_with_data("gone", status=404)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = DeliveryPolicy(
        timeout_seconds=5, max_attempts=4, backoff_seconds=0.5, max_backoff_seconds=1.5, jitter=0
    )  # no jitter: the schedule itself (jitter: test_backoff_has_jitter_and_retry_after_wins)
    routes = build_routes(
        {"task_failed": httpserver.url_for("/down"), "task_completed": httpserver.url_for("/gone")},
        allow_private=True,
    )
    dispatcher = WebhookDispatcher(routes, policy=policy, sleep=sleep, allow_private=True)
    assert dispatcher.handle({"type": "task_failed", "task_id": "t9"}) == 1
    assert dispatcher.handle({"type": "task_completed", "task_id": "t8"}) == 1
    assert await dispatcher.drain(10)
    await dispatcher.aclose()

    assert dispatcher.stats_dict() == {
        "sent": 0,
        "failed": 2,
        "retried": 3,
        "dropped": 0,
        "pending": 0,
    }
    paths = [req.path for req, _ in httpserver.log]
    assert paths.count("/down") == 4 and paths.count("/gone") == 1
    assert sleeps == [0.5, 1.0, 1.5]  # exponential, capped


@pytest.mark.slow
async def test_a_hanging_receiver_does_not_stall_orchestration(
    silent_socket: socket.socket, secret: str, fixed_clock
) -> None:
    async with Orchestra({"persistence": {"backend": "memory"}}, clock=fixed_clock) as orchestra:
        # A long timeout: the delivery is certainly still hanging when the task has finished.
        dispatcher = orchestra.configure_webhooks(
            task_completion=url_of(silent_socket),
            allow_private=True,
            policy=DeliveryPolicy(timeout_seconds=60, max_attempts=1),
        )
        await orchestra.register_agent(
            {"agent_id": "atlas-001", "agent_type": "AtlasAgent", "specializations": ["ethics"]}
        )
        allocation = await orchestra.orchestrate_task(
            {"id": "t1", "description": "Draft an ethics note", "required_skills": ["ethics"]}
        )
        execution = await orchestra.monitor_task_execution(allocation.allocation_id)

        assert execution["status"] in {"completed", "failed"}
        assert dispatcher.pending == 1  # orchestration finished while the delivery still hangs
        assert dispatcher.stats_dict()["sent"] == dispatcher.stats_dict()["failed"] == 0
        connection, _ = await asyncio.wait_for(
            asyncio.get_running_loop().sock_accept(silent_socket), 5
        )
        connection.close()  # the delivery really did connect

        await orchestra.aclose_integrations(grace_seconds=0.05)
        assert dispatcher.stats_dict() == {
            "sent": 0,
            "failed": 1,
            "retried": 0,
            "dropped": 0,
            "pending": 0,
        }


@pytest.mark.slow
async def test_a_silent_receiver_times_out_and_is_retried(
    silent_socket: socket.socket, secret: str
) -> None:
    facade = Facade()
    policy = DeliveryPolicy(timeout_seconds=0.2, max_attempts=2, backoff_seconds=0.01)
    dispatcher = facade.configure_webhooks(
        system_alerts=url_of(silent_socket), allow_private=True, policy=policy
    )
    await facade.hub.emit({"type": "agent_failure", "agent_id": "edison-001"})
    assert await dispatcher.drain(10)
    assert dispatcher.stats_dict() == {
        "sent": 0,
        "failed": 1,
        "retried": 1,
        "dropped": 0,
        "pending": 0,
    }
    await facade.aclose_integrations()


@pytest.mark.slow
async def test_a_real_run_posts_its_task_outcome(
    httpserver: HTTPServer, secret: str, fixed_clock
) -> None:
    httpserver.expect_request("/tasks", method="POST").respond_with_data("ok")
    async with Orchestra({"persistence": {"backend": "memory"}}, clock=fixed_clock) as orchestra:
        orchestra.configure_webhooks(
            {"task_completion": httpserver.url_for("/tasks")}, allow_private=True
        )
        await orchestra.register_agent(
            {"agent_id": "atlas-001", "agent_type": "AtlasAgent", "specializations": ["ethics"]}
        )
        allocation = await orchestra.orchestrate_task(
            {"id": "t1", "description": "Draft an ethics note", "required_skills": ["ethics"]}
        )
        execution = await orchestra.monitor_task_execution(allocation.allocation_id)
        await orchestra.aclose_integrations()
        assert orchestra.integration_stats()["webhooks"]["sent"] == 1

    ((request, _),) = httpserver.log
    envelope = json.loads(request.get_data())
    assert envelope["type"] == f"task_{execution['status']}"
    assert envelope["data"]["task_id"] == "t1" and envelope["data"]["agent_id"] == "atlas-001"
    assert request.headers["webhook-signature"] == independent_signature(
        request.get_data(), request.headers["webhook-id"], request.headers["webhook-timestamp"]
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::127.0.0.1]/hook",  # IPv4-compatible IPv6 (issue 14)
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_private_and_loopback_addresses_are_refused(url: str, secret: str) -> None:
    facade = Facade()
    with pytest.raises(ConfigurationError) as info:
        facade.configure_webhooks(task_completion=url)
    assert info.value.field == "task_completion" and info.value.value == redact_url(url)
    assert repr(redact_url(url)) in str(info.value) and "allow_private=True" in str(info.value)
    assert facade.integration_stats()["webhooks"] is None  # nothing was configured


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com@127.0.0.1/x", "https://user:token@hooks.example.com/x", "http://127.0.0.1\\@example.com/"]
)
def test_urls_with_userinfo_are_refused_without_echoing_it(url: str, secret: str) -> None:
    """Parsers disagree on the host of such URLs (issue 14), and the userinfo is a credential."""
    for allow_private in (False, True):
        with pytest.raises(ConfigurationError, match="credentials or a backslash") as info:
            Facade().configure_webhooks(task_completion=url, allow_private=allow_private)
        assert "token" not in str(info.value) and "user" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://hooks.example.com/x", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("hooks.example.com/x", "scheme ''"),
        ("https:///nohost", "has no host"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_only_http_urls_with_a_host_are_accepted(url: str, fragment: str, secret: str) -> None:
    with pytest.raises(ConfigurationError, match="system_alerts") as info:
        Facade().configure_webhooks(system_alerts=url, allow_private=True)
    assert fragment in str(info.value)


def test_host_names_are_resolved_before_they_are_trusted() -> None:
    def internal(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]  # one public, one private address: refused

    with pytest.raises(ConfigurationError, match=r"resolves to 10\.1\.2\.3"):
        build_routes({"task_completion": "https://hooks.example.com/t"}, resolve=internal)
    routes = build_routes(
        {"task_completion": "https://hooks.example.com/t"}, resolve=lambda h, p: ["93.184.216.34"]
    )
    assert routes == {
        "task_completed": ("https://hooks.example.com/t",),
        "task_failed": ("https://hooks.example.com/t",),
    }

    def unresolvable(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(ConfigurationError, match="does not resolve"):
        build_routes({"system_alerts": "https://nowhere.invalid/a"}, resolve=unresolvable)


def test_configuration_mistakes_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STELLAR_GRAPH_WEBHOOK_SECRET", raising=False)
    facade = Facade()
    with pytest.raises(ConfigurationError, match="STELLAR_GRAPH_WEBHOOK_SECRET is not set") as info:
        facade.configure_webhooks(task_completion="http://127.0.0.1:1/t", allow_private=True)
    assert info.value.field == "secret_env" and "secret_env=None" in str(info.value)
    with pytest.raises(ConfigurationError, match="got no URL"):
        facade.configure_webhooks()
    with pytest.raises(ConfigurationError, match="Unknown webhook 'task_done'") as unknown:
        facade.configure_webhooks(
            {"task_done": "http://127.0.0.1:1/t"}, secret_env=None, allow_private=True
        )
    assert "task_completion" in str(unknown.value)
    with pytest.raises(ConfigurationError, match="max_attempts"):
        DeliveryPolicy(max_attempts=0)


@pytest.mark.slow
async def test_unsigned_mode_and_per_event_routes(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STELLAR_GRAPH_WEBHOOK_SECRET", raising=False)
    httpserver.expect_request("/alloc").respond_with_data("ok")
    facade = Facade()
    dispatcher = facade.configure_webhooks(
        {"task_allocated": httpserver.url_for("/alloc")}, secret_env=None, allow_private=True
    )
    await facade.hub.emit({"type": "task_allocated", "task_id": "t1"})
    await facade.hub.emit(EVENT)  # not routed
    assert await dispatcher.drain(10)
    ((request, _),) = httpserver.log
    assert (
        "webhook-signature" not in request.headers
        and request.headers["X-Stellar-Event"] == "task_allocated"
    )
    await facade.aclose_integrations()


async def test_a_full_dispatcher_drops_and_counts(
    silent_socket: socket.socket, secret: str
) -> None:
    dispatcher = WebhookDispatcher(
        {"*": (url_of(silent_socket),)},
        policy=DeliveryPolicy(timeout_seconds=30, max_attempts=1),
        max_pending=2,
        allow_private=True,
    )
    assert [dispatcher.handle({"type": "system_alert", "n": i}) for i in range(4)] == [1, 1, 0, 0]
    assert dispatcher.stats_dict() == {
        "sent": 0,
        "failed": 0,
        "retried": 0,
        "dropped": 2,
        "pending": 2,
    }
    await dispatcher.aclose(grace_seconds=0)
    assert dispatcher.stats_dict()["failed"] == 2 and dispatcher.pending == 0


def test_handling_outside_an_event_loop_drops_instead_of_raising(secret: str) -> None:
    dispatcher = WebhookDispatcher({"*": ("https://hooks.example.com/x",)})
    assert dispatcher.handle(EVENT) == 0
    assert dispatcher.stats.dropped == 1


def test_signature_helper_matches_the_standard_webhooks_spec() -> None:
    body, ts = b'{"a":1}', int(time.time())
    assert sign_payload(SECRET, "msg_1", ts, body) == independent_signature(body, "msg_1", str(ts))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "not-a-number",
               "webhook-signature": sign_payload(SECRET, "msg_1", ts, body)}
    assert not verify_signature(SECRET, body, headers)


def test_a_plain_secret_is_used_as_its_bytes_and_a_bad_whsec_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    body, ts = b"{}", int(time.time())
    signature = sign_payload("plain-shared-secret", "msg_2", ts, body)
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(ts), "webhook-signature": signature}
    Webhook(b"plain-shared-secret").verify(body, headers, json_parse=False)  # what the docs tell receivers
    monkeypatch.setenv("STELLAR_GRAPH_WEBHOOK_SECRET", "whsec_not base64!")
    with pytest.raises(ConfigurationError, match="must continue in base64.*Fix: python -c"):
        WebhookDispatcher({"*": ("https://hooks.example.com/x",)})


@pytest.mark.slow
async def test_rotating_secrets_both_receivers_verify(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLAR_GRAPH_WEBHOOK_SECRET", f"{SECRET} {OLD_SECRET}")  # new first, old until receivers move
    httpserver.expect_request("/tasks").respond_with_data("ok")
    dispatcher = WebhookDispatcher({"task_completed": (httpserver.url_for("/tasks"),)}, policy=FAST, allow_private=True)
    dispatcher.handle(EVENT)
    assert await dispatcher.drain(10)
    ((request, _),) = httpserver.log
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert receiver_verifies(request, SECRET) and receiver_verifies(request, OLD_SECRET)
    assert not receiver_verifies(request, "whsec_" + base64.b64encode(b"someone-else-entirely-123").decode())
    await dispatcher.aclose()


def test_backoff_has_jitter_and_retry_after_wins() -> None:
    policy = DeliveryPolicy(backoff_seconds=1.0, max_backoff_seconds=30.0, jitter=0.5)
    rng = random.Random(7)
    waits = [policy.backoff(3, draw=rng.random()) for _ in range(200)]
    assert 2.0 <= min(waits) < 2.2 and 3.8 < max(waits) <= 4.0  # 4 s, jittered down to half at most
    assert len({round(w, 6) for w in waits}) > 150  # spread out, so failed receivers are not hit together
    assert policy.backoff(3, retry_after=7.0, draw=0.9) == 7.0  # the receiver's wish, not jittered
    assert policy.backoff(3, retry_after=99.0) == 30.0  # capped


@pytest.mark.parametrize(("header", "seconds"), [
    ("12", 12.0), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ("soon", None), ("", None), ("-3", None),
])
def test_retry_after_in_seconds_or_as_an_http_date(header: str, seconds: float | None) -> None:
    import httpx

    from stellar_graph.integrations.webhooks import _retry_after

    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    response = httpx.Response(503, headers={"Retry-After": header} if header else {})
    assert _retry_after(response, now=now) == seconds


class _Rebinding:
    """A resolver stub whose answer changes after the configure-time check (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers, self.calls = list(answers), 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


@pytest.mark.parametrize("private", ["127.0.0.1", "169.254.169.254", "10.0.0.7", "::ffff:192.168.1.1"])
async def test_a_host_that_resolves_to_a_private_address_at_send_time_is_refused(
    httpserver: HTTPServer, secret: str, private: str
) -> None:
    resolver = _Rebinding(["93.184.216.34"], [private])  # public when configured, private when sent
    routes = build_routes({"task_completed": "https://hooks.example.com/tasks"}, resolve=resolver)
    dispatcher = WebhookDispatcher(routes, policy=FAST, resolve=resolver)
    dispatcher.handle(EVENT)
    assert await dispatcher.drain(10)
    assert dispatcher.stats_dict()["failed"] == 1 and dispatcher.stats.retried == 0  # refused, not retried
    assert resolver.calls == 2 and not httpserver.log  # checked again at send time; nothing sent anywhere
    await dispatcher.aclose()


async def test_the_request_goes_to_the_address_checked_with_the_original_host(
    httpserver: HTTPServer, secret: str
) -> None:
    httpserver.expect_request("/tasks").respond_with_data("ok")
    port = httpserver.port
    resolver = _Rebinding(["127.0.0.1"])  # what `receiver.test` resolves to, each time it is asked
    dispatcher = WebhookDispatcher({"task_completed": (f"http://receiver.test:{port}/tasks",)}, policy=FAST,
                                   resolve=resolver, allow_private=True)
    dispatcher.handle(EVENT)
    assert await dispatcher.drain(10)
    ((request, _),) = httpserver.log
    assert request.headers["Host"] == f"receiver.test:{port}" and resolver.calls == 1
    assert receiver_verifies(request)
    await dispatcher.aclose()


def test_https_to_the_checked_address_still_verifies_the_hosts_certificate(tmp_path: Path, secret: str) -> None:
    """Pinned to an address, TLS still checks the certificate against the URL's host (SNI)."""
    import http.server
    import ssl
    import subprocess
    import threading

    import httpx

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=receiver.test", "-addext", "subjectAltName=DNS:receiver.test"],
                   check=True, capture_output=True, timeout=60)
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    trusted = ssl.create_default_context(cafile=str(cert))

    async def deliver(host: str) -> bool:
        dispatcher = WebhookDispatcher({"*": (f"https://{host}:{port}/hook",)}, policy=DeliveryPolicy(max_attempts=1),
                                       resolve=lambda h, p: ["127.0.0.1"], allow_private=True,
                                       transport=httpx.AsyncHTTPTransport(verify=trusted))
        transport = dispatcher._http()
        ok = await dispatcher.deliver(f"https://{host}:{port}/hook", b"{}", event_type="x", delivery_id="d1")
        await dispatcher.aclose()
        await transport.aclose()
        return ok

    try:
        assert asyncio.run(deliver("receiver.test")) and received == [f"receiver.test:{port}"]
        assert not asyncio.run(deliver("impostor.test"))  # same address, but not the certificate's host
    finally:
        server.shutdown()
        server.server_close()
