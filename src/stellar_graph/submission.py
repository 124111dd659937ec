"""Validate new agents and tasks against what the orchestra already holds.

Used twice with the same rules: by the facade before it starts a run (so a bad call fails fast and
nothing is written), and by the graph's ``intake`` node (so Studio, LangServe and direct graph
callers get the same checks). A batch is all-or-nothing: one bad entry rejects the batch and
leaves everything already accepted untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from stellar_graph.agents.render import render_system_prompt, render_task_message
from stellar_graph.agents.spec import AgentTypeRegistry
from stellar_graph.allocation import STRATEGIES
from stellar_graph.errors import (
    ConfigurationError,
    DuplicateAgentError,
    DuplicateTaskError,
    InvalidInputError,
)
from stellar_graph.models import AgentProfile, Task, parse_model, split_commas

__all__ = ["accept_agents", "accept_tasks", "check_strategy", "known_agent_names", "referenced_ids"]

TokenCounter = Callable[[str], int]


def accept_agents(
    existing: Mapping[str, Any],
    raw: Sequence[Any],
    registry: AgentTypeRegistry,
    count_tokens: TokenCounter,
) -> dict[str, dict[str, Any]]:
    """Validate agent profiles; return agent id -> registry record.

    Raises:
        InvalidInputError: a profile is malformed.
        DuplicateAgentError: the id is registered already or repeated in the batch.
        UnknownAgentError: the agent type is not one of the orchestra's types.
    """
    records: dict[str, dict[str, Any]] = {}
    for item in raw:
        profile = parse_model(AgentProfile, item, kind="agent profile")
        if profile.agent_id in existing or profile.agent_id in records:
            raise DuplicateAgentError(profile.agent_id)
        spec = registry.resolve(profile.agent_type)
        record = profile.model_dump(mode="json")
        record["agent_type"] = spec.agent_type
        record["agent_node"] = spec.name
        record["healthy"] = True
        record["prompt_tokens"] = count_tokens(render_system_prompt(spec, record))
        records[profile.agent_id] = record
    return records


def accept_tasks(
    existing: Mapping[str, Mapping[str, Any]],
    raw: Sequence[Any],
    count_tokens: TokenCounter,
    *,
    now: datetime,
    known_agents: Collection[str] | None = None,
    finished: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Validate tasks; return task id -> board record (status ``pending``).

    Args:
        known_agents: agent ids and type names a task's ``preferred_agents`` may name
            (``None`` skips that check).
        finished: id -> final status of tasks that ran and left the board: their ids are taken
            for good, and a dependency on one is settled by its status (recorded on the task as
            ``settled_dependencies``).

    Raises:
        InvalidInputError: a task is malformed, its id is taken, a dependency or preferred agent
            is unknown, or the batch's dependencies form a cycle (the cycle is named).
    """
    tasks = [parse_model(Task, item, kind="task") for item in raw]
    if known_agents is not None:
        lowered = {k.lower() for k in known_agents}
        for t in tasks:
            unknown = [a for a in t.preferred_agents if a.lower() not in lowered]
            if unknown:
                _fail(t.id, "preferred_agents", unknown, "unknown agent id(s) or type(s)",
                      f"register the agent first or name one of {sorted(known_agents)[:20]}")
    ids = [t.id for t in tasks]
    finished = {} if finished is None else finished  # not `or`: a ChainMap's truth value counts its keys
    for t in tasks:
        if t.id in existing or ids.count(t.id) > 1:
            raise DuplicateTaskError(t.id, where="is already on the board" if t.id in existing else "is repeated in the batch")
        if t.id in finished:
            raise DuplicateTaskError(t.id, where="already ran (it is in the orchestra's history)")
    known = set(existing) | set(ids)  # and ``finished``, looked up in place (it may be large)
    for t in tasks:
        unknown = [d for d in t.dependencies if d not in known and d not in finished]
        if unknown:
            _fail(t.id, "dependencies", unknown, "unknown task id(s)", "submit those tasks first or fix the ids")
    _refuse_cycles({t.id: list(t.dependencies) for t in tasks})
    seq = max((int(r.get("seq", 0)) for r in existing.values()), default=0)
    records = {}
    for offset, t in enumerate(tasks, start=1):
        record = t.model_dump(mode="json")
        settled = {d: finished[d] for d in t.dependencies if d in finished and d not in existing}
        if settled:
            record["settled_dependencies"] = settled
        record.update(
            status="pending",
            seq=seq + offset,
            attempt=0,
            submitted_at=now.isoformat(),
            prompt_tokens=count_tokens(render_task_message(record)),
        )
        records[t.id] = record
    return records


def referenced_ids(raw: Sequence[Any]) -> list[str]:
    """The task ids and dependency ids named in a raw batch (to look up in the history first)."""
    ids: list[str] = []
    for item in raw:
        if isinstance(item, Mapping):
            deps = split_commas(item.get("dependencies"))
            ids += [str(x) for x in [item.get("id"), *(deps if isinstance(deps, list) else [])] if isinstance(x, str)]
    return list(dict.fromkeys(ids))


def check_strategy(strategy: str | None) -> None:
    """Refuse an unknown per-run allocation strategy, listing the allowed ones."""
    if strategy is not None and strategy not in STRATEGIES:
        raise ConfigurationError(
            f"Unknown allocation strategy {strategy!r}; allowed: {list(STRATEGIES)}.",
            field="allocation_strategy",
            value=strategy,
        )


def known_agent_names(agents: Mapping[str, Any], registry: AgentTypeRegistry) -> set[str]:
    """Agent ids plus every accepted spelling of the agent types."""
    names = set(agents)
    for spec in registry.specs:
        names |= spec.aliases()
    return names


def _refuse_cycles(graph: Mapping[str, list[str]]) -> None:
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [node, dep]
                _fail(node, "dependencies", cycle, "the dependencies form a cycle: " + " -> ".join(cycle),
                      "remove one of these dependencies")
            if dep in graph and state.get(dep) is None:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in graph:
        if state.get(node) is None:
            visit(node, [node])


def _fail(task_id: str, field: str, value: object, problem: str, fix: str) -> None:
    raise InvalidInputError(
        f"Invalid task {task_id!r}: `{field}`={value!r}: {problem}. Fix: {fix}.",
        errors=[{"field": field, "value": value, "message": problem}],
    )
