"""Fault injection: many tasks through the real ChatOpenAI against a flaky, mocked OpenAI endpoint.

Every task goes through ``StellarOrchestra`` (SQLite in a temporary directory) and the agents'
real ``ChatOpenAI`` (``stellar_graph.testing.make_test_chat_openai``); respx answers
``/chat/completions``. Each request draws its fate from a seed, the task, the agent and the call
number (so the faults do not depend on scheduling):

- 30%: HTTP 500 or 429 (some 429s carry ``retry-after`` 0.05-0.2 s);
- 10%: a timeout (``httpx.ReadTimeout`` raised, or a reply that hangs past the agent timeout);
- 5%: a malformed body (HTTP 200 whose content is not the ``AgentAnswer`` JSON);
- otherwise a valid ``AgentAnswer``.

It prints completed, failed (by reason), degraded and *lost* tasks (submitted but not in a final
state), the agent calls beyond the retry budget (``retry_max_attempts`` calls per agent attempt,
``max_attempts`` agents per task), and the recovery steps by kind. Exit code 1 if anything was
lost or over budget.

Run: ``python tools/fault_injection.py [--tasks 200] [--seed S] [--quick] [--scale 2] [--escalate]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import respx

from stellar_graph import REFERENCE_TEAM, StellarOrchestra
from stellar_graph.board import FINISHED
from stellar_graph.testing import make_test_chat_openai, openai_error, structured_completion

__all__ = ["FaultyEndpoint", "FaultReport", "main", "make_tasks", "run_faults"]

BASE = "http://llm.mock/v1"
CRITERION = "answer given"
SKILLS = ("mathematics", "engineering", "ethics", "critical_review", "statistics", "data_analysis")
FAULT_KINDS = (
    "http_500",
    "http_429",
    "http_429_retry_after",
    "timeout_raise",
    "timeout_hang",
    "malformed",
    "ok",
)
_TASK_RE = re.compile(r"Task (\S+) \(")
_AGENT_RE = re.compile(r"\(instance ([^)]+)\)")


def harness_config(data_dir: str, *, escalate: bool = False) -> dict[str, Any]:
    """The orchestra's config for the run: fast retries, a short agent timeout, a fallback agent."""
    strategies = ["retry", "reassign", "fallback", *(["escalate"] if escalate else [])]
    return {
        "persistence": {"backend": "sqlite", "data_dir": data_dir, "durability": "sync"},
        "emergency_protocols": {
            "recovery_strategies": strategies,
            "retry_max_attempts": 3,
            "retry_initial_interval_seconds": 0.01,
            # Long enough that a valid reply (and a repair call after a malformed one) is never cut
            # off on a loaded machine (the tests count every `ok` reply as a completed task);
            # shorter than `hang_seconds`, so hanging replies still time out.
            "agent_timeout_seconds": 2.0,
            "fallback_agent": "atlas-002",
        },
        "task_allocation": {"max_attempts": 3},
    }


def team() -> list[dict[str, Any]]:
    """Two instances of each reference agent type, two slots each (reassignment has somewhere to go)."""
    return [
        spec.default_profile(f"{spec.name}-00{i}", capacity=2)
        for spec in REFERENCE_TEAM
        for i in (1, 2)
    ]


def make_tasks(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` tasks spread over the team's skills (seeded)."""
    rng = random.Random(seed)
    return [
        {
            "id": f"ft-{i:03d}",
            "description": f"Work item {i}: produce a short answer.",
            "required_skills": [rng.choice(SKILLS)],
            "success_criteria": [CRITERION],
            "estimated_duration_minutes": 5,
        }
        for i in range(n)
    ]


@dataclass
class FaultyEndpoint:
    """The mocked ``/chat/completions``: a seeded fault per request, and a log of every request.

    Args:
        seed: the run's seed; each request's fate is drawn from (seed, task, agent, call number).
        scale: multiplies every fault's probability (1 = the rates above; 2 = 90% faults).
        hang_seconds: how long a hanging reply sleeps (longer than the agent timeout).
    """

    seed: int
    scale: float = 1.0
    hang_seconds: float = 5.0
    calls: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """(task id, agent id) -> requests made (repair calls apart)."""
    repairs: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """(task id, agent id) -> repair calls (the agent's second ask after a reply of the wrong shape)."""
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """task id -> agents in the order they first called the model for it."""
    kinds: Counter[str] = field(default_factory=Counter)

    def fate(self, task_id: str, agent_id: str, number: int) -> tuple[str, float]:
        """The fault for one request: (kind, retry-after seconds or 0).

        The first request for task ``ft-00i`` (its first agent) gets ``FAULT_KINDS[i]``, so every
        kind occurs in every run whatever order the tasks reach the agents in; the rest are drawn.
        """
        rng = random.Random(f"{self.seed}:{task_id}:{agent_id}:{number}")
        index = int(task_id.rsplit("-", 1)[-1]) if task_id.rsplit("-", 1)[-1].isdigit() else -1
        if number == 1 and 0 <= index < len(FAULT_KINDS) and self.order[task_id][:1] == [agent_id]:
            forced = FAULT_KINDS[index]
            return forced, (rng.uniform(0.05, 0.2) if forced == "http_429_retry_after" else 0.0)
        draw = rng.random() / self.scale  # scaling the draw down scales every fault's share up
        if draw < 0.15:
            return "http_500", 0.0
        if draw < 0.30:
            with_header = rng.random() < 0.5
            return (
                ("http_429_retry_after", rng.uniform(0.05, 0.2))
                if with_header
                else ("http_429", 0.0)
            )
        if draw < 0.40:
            return ("timeout_raise" if rng.random() < 0.5 else "timeout_hang"), 0.0
        if draw < 0.45:
            return "malformed", 0.0
        return "ok", 0.0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        task_id, agent_id = _ids(body)
        key = (task_id, agent_id)
        if agent_id not in self.order[task_id]:
            self.order[task_id].append(agent_id)
        if "could not be used" in str(body["messages"][-1].get("content")):  # a repair call
            self.repairs[key] += 1
            kind, retry_after = self.fate(task_id, agent_id, 1000 + self.repairs[key])
        else:
            self.calls[key] += 1
            kind, retry_after = self.fate(task_id, agent_id, self.calls[key])
        self.kinds[kind] += 1
        if kind == "http_500":
            return openai_error(500, "injected server error")
        if kind.startswith("http_429"):
            return openai_error(429, "injected rate limit", retry_after=retry_after or None)
        if kind == "timeout_raise":
            raise httpx.ReadTimeout("injected read timeout", request=request)
        if kind == "timeout_hang":
            await asyncio.sleep(self.hang_seconds)  # cancelled by the agent's timeout policy
        if kind == "malformed":
            return httpx.Response(
                200, json=structured_completion({"answer": f"no schema for {task_id}"})
            )
        answer = {"result": f"answer to {task_id}", "criteria_met": [CRITERION], "confidence": 0.9}
        return httpx.Response(200, json=structured_completion(answer))


def _ids(body: dict[str, Any]) -> tuple[str, str]:
    """(task id, agent id) of a request: from the task message and the system prompt."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    task, agent = _TASK_RE.search(user), _AGENT_RE.search(system)
    if task is None or agent is None:
        raise ValueError(
            f"request without a task id or agent instance: {user[:80]!r} / {system[:80]!r}"
        )
    return task.group(1), agent.group(1)


@dataclass
class FaultReport:
    """What a fault-injection run counted."""

    submitted: int
    statuses: Counter[str]
    failed_reasons: Counter[str]
    refused_reasons: Counter[str]
    """Tasks no agent could take (never attempted): not lost, but not done either."""
    lost: list[str]
    beyond_budget: int
    recovery: Counter[str]
    faults: Counter[str]
    requests: int
    escalations: int
    seconds: float

    @property
    def ok(self) -> bool:
        """Nothing lost, no call beyond the budget."""
        return not self.lost and self.beyond_budget == 0


def beyond_budget(endpoint: FaultyEndpoint, *, retry_max_attempts: int, max_attempts: int) -> int:
    """Calls beyond ``retry_max_attempts`` per (task, agent) or to agents beyond ``max_attempts``,
    and repair calls beyond one per call."""
    extra = sum(max(0, n - retry_max_attempts) for n in endpoint.calls.values())
    extra += sum(max(0, n - endpoint.calls[key]) for key, n in endpoint.repairs.items())
    for task_id, agents in endpoint.order.items():
        extra += sum(endpoint.calls[(task_id, a)] for a in agents[max_attempts:])
    return extra


def _reason(task: dict[str, Any]) -> str:
    """A short group label for a failed task's error."""
    error = str(task.get("error") or "no error recorded")
    label = error.split(":", 1)[0].strip()
    if "reassignment found no other feasible agent" in error:
        label += " (no agent left)"
    if error.startswith("failed by human decision"):
        label = "failed by human decision"
    return label


async def run_faults(
    n_tasks: int = 200,
    *,
    seed: int = 0,
    scale: float = 1.0,
    data_dir: str | Path | None = None,
    escalate: bool = False,
    batch: int = 25,
) -> FaultReport:
    """Run ``n_tasks`` through the orchestra against the faulty endpoint and count the outcome.

    Args:
        n_tasks: tasks to submit (in batches of ``batch``).
        seed: seeds the tasks and every request's fault.
        scale: multiplies the fault rates (see :class:`FaultyEndpoint`).
        data_dir: where the SQLite checkpoints go (a temporary directory by default).
        escalate: add ``escalate`` to the recovery strategies; escalations are answered
            ``fail`` (a human declines), so the ladder's end is still counted.
        batch: tasks per ``orchestrate_multiple_tasks`` call.

    Returns:
        The counts (see :class:`FaultReport`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        config = harness_config(str(data_dir or tmp), escalate=escalate)
        endpoint = FaultyEndpoint(seed, scale=scale)
        tasks = make_tasks(n_tasks, seed)
        started = time.perf_counter()
        with respx.mock(base_url=BASE, assert_all_called=False) as mock:
            mock.post("/chat/completions").mock(side_effect=endpoint)
            state, escalations = await _drive(config, tasks, seed, batch)
        seconds = time.perf_counter() - started
    protocols = config["emergency_protocols"]
    return _count(
        tasks,
        state,
        endpoint,
        escalations,
        seconds,
        protocols["retry_max_attempts"],
        config["task_allocation"]["max_attempts"],
    )


async def _drive(
    config: dict[str, Any], tasks: list[dict[str, Any]], seed: int, batch: int
) -> tuple[dict[str, Any], int]:
    model = make_test_chat_openai(BASE)
    escalations = 0
    async with StellarOrchestra(config, model=model, thread_id="faults", seed=seed) as orchestra:
        for profile in team():
            await orchestra.register_agent(profile)
        for start in range(0, len(tasks), batch):
            await orchestra.orchestrate_multiple_tasks(tasks[start : start + batch])
        await orchestra.wait_idle()
        while pending := orchestra.pending_escalations():
            escalations += len(pending)
            await orchestra.resolve_escalations(
                {
                    tid: {"action": "fail", "reason": "fault-injection harness declines"}
                    for tid in pending
                }
            )
            await orchestra.wait_idle()
        await orchestra.refresh_state()
        records = await orchestra.get_task_records([t["id"] for t in tasks])  # finished ones left the board
        return {**orchestra.state(), "tasks": {t: r["task"] for t, r in records.items()}}, escalations


def _count(
    tasks: list[dict[str, Any]],
    state: dict[str, Any],
    endpoint: FaultyEndpoint,
    escalations: int,
    seconds: float,
    retry_max_attempts: int,
    max_attempts: int,
) -> FaultReport:
    board = state.get("tasks") or {}
    records = [board.get(t["id"], {}) for t in tasks]
    statuses = Counter(str(r.get("status", "missing")) for r in records)
    lost = [t["id"] for t, r in zip(tasks, records, strict=True) if r.get("status") not in FINISHED]
    failed = Counter(_reason(r) for r in records if r.get("status") == "failed")
    refused = Counter(_reason(r) for r in records if r.get("status") == "refused")
    recovery: Counter[str] = Counter(
        step.get("step", "?") for r in records for step in r.get("recovery") or []
    )
    recovery["retry"] = sum(n - 1 for n in endpoint.calls.values())
    recovery["reply repair call"] = sum(endpoint.repairs.values())
    return FaultReport(
        submitted=len(tasks),
        statuses=statuses,
        failed_reasons=failed,
        refused_reasons=refused,
        lost=lost,
        beyond_budget=beyond_budget(
            endpoint, retry_max_attempts=retry_max_attempts, max_attempts=max_attempts
        ),
        recovery=recovery,
        faults=Counter({k: endpoint.kinds[k] for k in FAULT_KINDS}),
        requests=sum(endpoint.calls.values()) + sum(endpoint.repairs.values()),
        escalations=escalations,
        seconds=seconds,
    )


def render(report: FaultReport) -> str:
    """The report as a table."""
    rows = [("submitted", report.submitted)]
    rows += [(f"status {s}", n) for s, n in sorted(report.statuses.items())]
    rows += [(f"  failed: {r}", n) for r, n in report.failed_reasons.most_common()]
    refused = sum(report.refused_reasons.values())
    rows += [(f"refused unattempted ({100 * refused / max(report.submitted, 1):.0f}%)", refused)]
    rows += [(f"  refused: {r}", n) for r, n in report.refused_reasons.most_common()]
    rows += [
        ("lost (must be 0)", len(report.lost)),
        ("calls beyond retry budget (must be 0)", report.beyond_budget),
    ]
    rows += [("LLM requests", report.requests)]
    rows += [(f"  fault {k}", n) for k, n in report.faults.items()]
    rows += [(f"recovery {k}", n) for k, n in sorted(report.recovery.items())]
    rows += [
        ("escalations answered", report.escalations),
        ("wall seconds", f"{report.seconds:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value:>8}" for name, value in rows]
    if report.lost:
        lines.append(f"LOST: {report.lost[:20]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit code 1 if a task was lost or a call exceeded the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 tasks")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the fault rates (2 = 90%% faults)"
    )
    parser.add_argument(
        "--escalate", action="store_true", help="add the escalate rung (answered `fail`)"
    )
    args = parser.parse_args(argv)
    n_tasks = min(args.tasks, 40) if args.quick else args.tasks
    # The agents' per-failure warnings would drown the table.
    logging.basicConfig(level=logging.ERROR)
    report = asyncio.run(
        run_faults(n_tasks, seed=args.seed, scale=args.scale, escalate=args.escalate)
    )
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
