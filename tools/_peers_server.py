"""A mock OpenAI Chat Completions server on 127.0.0.1 shared by every system in ``bench_vs_peers``.

Each system talks to its own path prefix (``http://127.0.0.1:PORT/<system>/v1``) so its calls are
counted apart. The server plays every LLM in the benchmark:

* a **supervisor** call (the system prompt is not an agent's, and ``transfer_to_*`` tools are
  bound): before the owner agent has answered it hands off to the task's owner; afterwards it
  finishes, with ``forward_message`` when that tool is bound, else with the answer as text;
* an **agent** call that is not the task's owner but can hand off to it (swarm): a handoff;
* any other **agent** call: the canned answer, as ``AgentAnswer`` JSON when the request asks for
  JSON (stellar_graph: JSON mode, or the ``AgentAnswer`` schema), else as plain text.

A call answered with the canned answer is *work*; every other call is *routing*. Each request
sleeps ``latency`` seconds (a thread per connection, so concurrent calls overlap). Bodies are
kept and counted after the run (see ``_peers_report``), so tokenising never competes with the
system under test for the GIL.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from _peers_workload import CRITERION, TASK_ID_RE, Workload
from stellar_graph.testing import chat_completion

__all__ = ["Call", "MockLLMServer"]

_AGENT_RE = re.compile(r"You are (\w+) \(instance ")
_PATH_RE = re.compile(r"^/([\w.-]+)/v1/chat/completions$")


@dataclass
class Call:
    """One request to the mock LLM.

    Attributes:
        system: the path prefix (which system made the call).
        kind: ``"work"`` (answered with the task's canned answer) or ``"routing"``.
        caller: the agent type whose prompt made the call, or ``"supervisor"``.
        task_id: the task the request is about.
        body: the request body as sent.
        reply: the assistant message returned (``content`` and/or ``tool_calls``).
        started: ``time.perf_counter()`` when the request was read.
        finished: ``time.perf_counter()`` when the reply was ready to be written (after the latency).
    """

    system: str
    kind: str
    caller: str
    task_id: str
    body: dict[str, Any]
    reply: dict[str, Any]
    started: float
    finished: float


class MockLLMServer:
    """Start with ``with MockLLMServer(workload, latency=0.02) as server:``; read ``server.calls``."""

    def __init__(self, workload: Workload, *, latency: float = 0.02) -> None:
        self.workload = workload
        self.latency = latency
        self.calls: list[Call] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="mock-llm", daemon=True
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    def base_url(self, system: str) -> str:
        """The OpenAI ``base_url`` a system uses."""
        return f"http://127.0.0.1:{self.port}/{system}/v1"

    def calls_of(self, system: str) -> list[Call]:
        """The calls one system made, in arrival order."""
        with self._lock:
            return [c for c in self.calls if c.system == system]

    def __enter__(self) -> MockLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def answer(self, system: str, body: dict[str, Any], started: float) -> dict[str, Any]:
        """Decide the reply to one request, sleep the latency, record the call."""
        kind, caller, task_id, message = decide(self.workload, body)
        time.sleep(self.latency)
        completion = chat_completion(
            message.get("content"),
            tool_calls=message.get("tool_calls"),
            model=str(body.get("model", "gpt-4o-mini")),
            prompt_tokens=0,  # measured after the run, from the body
            completion_tokens=0,
        )
        call = Call(system, kind, caller, task_id, body, message, started, time.perf_counter())
        with self._lock:
            self.calls.append(call)
        return completion

    def record_error(self, text: str) -> None:
        """Remember a request the server could not answer (reported by the benchmark)."""
        with self._lock:
            self.errors.append(text)


def decide(workload: Workload, body: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """Classify a request and build the assistant message to return.

    Returns:
        ``(kind, caller, task_id, message)`` where message has ``content`` and/or ``tool_calls``
        (``{"name", "arguments"}``, the format ``stellar_graph.testing.chat_completion`` takes).

    Raises:
        ValueError: the request names no workload task, or asks for something the script has no
            answer for (a supervisor without a handoff tool to the owner).
    """
    messages = body.get("messages") or []
    # A thread may hold earlier tasks (supervisor-shared): only the newest task's turn counts.
    task, turn = _find_task(workload, messages)
    caller = _caller(messages)
    tools = {t["function"]["name"] for t in body.get("tools") or [] if "function" in t}
    handoff = f"transfer_to_{task.owner}"
    if caller == "supervisor":
        if not _answered(turn, task.answer):
            if handoff not in tools:
                raise ValueError(f"supervisor call for {task.id!r} has no {handoff!r} tool")
            return "routing", caller, task.id, {"tool_calls": [{"name": handoff, "arguments": {}}]}
        if "forward_message" in tools:
            call = {"name": "forward_message", "arguments": {"from_agent": task.owner}}
            return "routing", caller, task.id, {"tool_calls": [call]}
        return "routing", caller, task.id, {"content": task.answer}
    if caller != task.owner and handoff in tools:
        return "routing", caller, task.id, {"tool_calls": [{"name": handoff, "arguments": {}}]}
    return "work", caller, task.id, {"content": _work_content(body, task.answer)}


def _find_task(
    workload: Workload, messages: list[dict[str, Any]]
) -> tuple[Any, list[dict[str, Any]]]:
    """The task of the newest user message naming one, and the messages since (its turn)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user":
            match = TASK_ID_RE.search(_text(message.get("content")))
            if match and match.group(1) in workload.by_id:
                return workload.by_id[match.group(1)], messages[index + 1 :]
    raise ValueError("request names no workload task (no 'Task bench-NNN' in a user message)")


def _caller(messages: list[dict[str, Any]]) -> str:
    system = next(
        (_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")), ""
    )
    match = _AGENT_RE.search(system)
    return match.group(1).lower() if match else "supervisor"


def _answered(messages: list[dict[str, Any]], answer: str) -> bool:
    return any(m.get("role") == "assistant" and answer in _text(m.get("content")) for m in messages)


def _work_content(body: dict[str, Any], answer: str) -> str:
    # stellar_graph's agents ask for JSON: a json_schema named AgentAnswer, or JSON mode.
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object" or (fmt.get("json_schema") or {}).get("name") == "AgentAnswer":
        return json.dumps({"result": answer, "criteria_met": [CRITERION], "confidence": 0.9})
    return answer


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return ""


def _make_handler(server: MockLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with a real API
        # Headers and body go out as two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers (~40 ms on Linux), which would swamp the simulated latency.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            started = time.perf_counter()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            match = _PATH_RE.match(self.path)
            try:
                if match is None:
                    raise ValueError(f"unexpected path {self.path!r}")
                body = json.loads(raw)
                if body.get("stream"):
                    raise ValueError("streaming requests are not scripted")
                self._send(200, server.answer(match.group(1), body, started))
            except (ValueError, KeyError) as exc:
                server.record_error(f"{self.path}: {exc}")
                self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # silence per-request logging on stderr

    return Handler
