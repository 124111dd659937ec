"""`stellar-graph simulate`: does the orchestra learn who is good at what? Measured through the graph.

Agents with hidden true success probabilities take tasks through the real orchestra graph (intake,
allocator, a task run per task with the agent subgraphs plan -> act -> check -> report, monitor,
optimizer), compiled with an in-memory checkpointer and Store and run live by an
``OrchestraRuntime``. The agents' chat model knows the truth and
nothing else does: it answers each task with the success criterion met with probability equal to
the agent's hidden proficiency (a common random number per task, so every strategy faces the
same luck). Tasks arrive in batches of ``batch`` per run, each run on a new thread: what is
learned crosses runs only through the Store, as in production.

Strategies:

* ``adaptive``: ``orchestration_mode: adaptive`` (Thompson sampling, the default config).
* ``epsilon``: adaptive with a constant 10% exploration (``exploration_strategy:
  constant_epsilon``): the baseline adaptive must never do worse than.
* ``static`` / ``dynamic``: no learning (ties go to registration order / the joint assignment).
* ``round_robin``, ``random``, ``oracle``: the choice is made outside the orchestra (in turn, at
  random, or the truly best agent at that moment) and expressed as a routing skill only the
  chosen agent has, so the same graph runs the work (in ``dynamic`` mode).

Scored by pseudo-regret against the oracle: ``% lost = 100 * sum_t (best_t - p_t(chosen)) / T``,
the expected share of tasks lost to choosing a worse agent than the best at that time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from pydantic import TypeAdapter, ValidationError

from stellar_graph._files import write_text_atomic
from stellar_graph.agents.factory import AgentAnswer
from stellar_graph.errors import ConfigurationError
from stellar_graph.graph import create_orchestra
from stellar_graph.graphs.task import create_task_graph
from stellar_graph.history import alookup
from stellar_graph.runtime.control import OrchestraRuntime
from stellar_graph.testing import ScriptedChatModel, structured

__all__ = [
    "STRATEGIES",
    "Scenario",
    "StrategyRun",
    "agent_shares",
    "format_table",
    "load_scenario",
    "run_strategy",
    "summary_table",
    "write_report",
]

STRATEGIES = ("adaptive", "epsilon", "static", "dynamic", "round_robin", "random", "oracle")
_EXTERNAL = {"round_robin", "random", "oracle"}
_AGENT = re.compile(r"\bagent-(\d+)\b")
_TASK = re.compile(r"\bsim-(\d+)\b")


@dataclass(frozen=True)
class Scenario:
    """A learning scenario: the team, how proficiencies are drawn, and whether the best degrades."""

    name: str
    description: str = ""
    agents: int = 10
    skill: str = "analysis"
    low: float = 0.2
    high: float = 0.8
    best_gap: float = 0.07
    degrade_at: float | None = None
    """Fraction of the run after which the best agent degrades (``None``: stationary)."""
    degrade_to: float = 0.15
    batch: int = 10
    """Tasks per orchestra run (the learner sees outcomes after each run)."""

    def proficiencies(self, seed: int) -> np.ndarray:
        """The hidden success probability of each agent (the best exactly ``best_gap`` above the next)."""
        rng = np.random.default_rng(seed)
        means = rng.uniform(self.low, self.high, self.agents)
        order = np.argsort(-means)
        means[order[0]] = min(means[order[1]] + self.best_gap, 1.0)
        return means

    def truth(self, seed: int, tasks: int) -> np.ndarray:
        """(tasks, agents) success probability per task index."""
        means = self.proficiencies(seed)
        table = np.broadcast_to(means, (tasks, self.agents)).copy()
        if self.degrade_at is not None:
            table[int(tasks * self.degrade_at) :, int(np.argmax(means))] = self.degrade_to
        return table


def load_scenario(name_or_path: str) -> Scenario:
    """A bundled scenario by name (``learning``, ``learning_degrading``) or a YAML file.

    Raises:
        ConfigurationError: unknown scenario, or a bad field (named).
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        bundled = resources.files("stellar_graph.scenarios") / "simulate" / f"{name_or_path}.yaml"
        if not bundled.is_file():
            raise ConfigurationError(
                f"simulation scenario {name_or_path!r} not found. Fix: use learning, learning_degrading "
                "or a path to a .yaml file.",
                field="scenario",
                value=name_or_path,
            )
        text = bundled.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"simulation scenario {name_or_path!r} must be a mapping of fields, got {type(data).__name__}. "
            "Fix: use the fields of stellar_graph.simulator.Scenario (name, agents, low, high, ...).",
            field="scenario", value=name_or_path,
        )
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(Scenario)})
    if unknown:
        raise ConfigurationError(
            f"simulation scenario {name_or_path!r}: unknown field(s) {unknown}. Fix: use the fields of "
            f"stellar_graph.simulator.Scenario {[f.name for f in dataclasses.fields(Scenario)]}.",
            field=unknown[0], value=data[unknown[0]],
        )
    try:
        scenario = TypeAdapter(Scenario).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigurationError(
            f"simulation scenario {name_or_path!r}: `{where}` = {err.get('input')!r} is invalid ({err['msg']}). "
            f"Fix: give `{where}` a value of type {Scenario.__annotations__.get(where, 'see Scenario')}.",
            field=where, value=err.get("input"),
        ) from None
    if scenario.agents < 2 or scenario.batch < 1 or not 0 <= scenario.low <= scenario.high <= 1:
        raise ConfigurationError(
            f"simulation scenario {scenario.name!r}: need agents >= 2, batch >= 1 and 0 <= low <= high <= 1.",
            field="scenario",
            value=data,
        )
    return scenario


@dataclass
class StrategyRun:
    """What one strategy did on one seed."""

    strategy: str
    seed: int
    chosen: np.ndarray
    """(T,) index of the agent that did each task."""
    expected: np.ndarray
    """(T,) true success probability of that agent at that time."""
    best: np.ndarray
    """(T,) the best true success probability at that time."""
    successes: np.ndarray
    """(T,) whether the task succeeded."""
    busy_minutes: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    learning: dict[str, Any] = field(default_factory=dict)

    @property
    def lost_percent(self) -> float:
        """``100 * sum(best - expected) / T``: expected tasks lost against the oracle."""
        return float(100.0 * (self.best - self.expected).sum() / self.best.size)

    @property
    def success_rate(self) -> float:
        return float(self.successes.mean())


def _config(strategy: str) -> dict[str, Any]:
    mode = {"adaptive": "adaptive", "epsilon": "adaptive", "static": "static"}.get(strategy, "dynamic")
    config: dict[str, Any] = {
        "orchestration_mode": mode,
        "persistence": {"backend": "memory"},
        "task_allocation": {"max_attempts": 1, "strategy": "greedy"},
        "emergency_protocols": {"recovery_strategies": []},
    }
    if strategy == "epsilon":
        config["learning_parameters"] = {"exploration_strategy": "constant_epsilon", "exploration_rate": 0.1}
    return config


def _model(truth: np.ndarray, seed: int, calls: int) -> ScriptedChatModel:
    def answer(messages: Sequence[BaseMessage]) -> AIMessage:
        agent = int(_AGENT.findall(str(messages[0].content))[0])
        index = int(_TASK.findall(str(messages[-1].content))[0])
        luck = _uniform(seed, index)  # common random numbers: the same luck for every strategy
        ok = luck < truth[index, agent]
        return structured(AgentAnswer(result=f"sim-{index:06d} by agent-{agent:02d}", criteria_met=["done"] if ok else [], confidence=0.8))

    return ScriptedChatModel(responses=[answer] * calls)


def _uniform(seed: int, index: int) -> float:
    digest = hashlib.sha256(f"sim:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


async def run_strategy(
    strategy: str, scenario: Scenario, *, tasks: int, seed: int, on_batch: Callable[[int], None] | None = None
) -> StrategyRun:
    """Run ``tasks`` tasks of ``scenario`` through a fresh orchestra with ``strategy``;
    ``on_batch(n)`` is called after each batch with the number of its tasks (progress bars)."""
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"strategy {strategy!r} is unknown. Fix: use one of {', '.join(STRATEGIES)}.", field="strategies", value=strategy
        )
    truth = scenario.truth(seed, tasks)
    k = scenario.agents
    ids = [f"agent-{i:02d}" for i in range(k)]
    agents = [
        {"agent_id": a, "agent_type": "PythagorasAgent", "capacity": scenario.batch,
         "capabilities": [scenario.skill, f"route-{i}"]}
        for i, a in enumerate(ids)
    ]
    config, model = _config(strategy), _model(truth, seed, tasks + 10)
    saver, store = InMemorySaver(), InMemoryStore()
    app = create_orchestra(config, model=model, seed=seed).compile(checkpointer=saver, store=store)
    task_app = create_task_graph(config, model=model, seed=seed).compile(checkpointer=saver, store=store)
    picker = np.random.default_rng(seed + 7_919)
    chosen = np.full(tasks, -1)
    successes = np.zeros(tasks, dtype=bool)
    busy: dict[str, float] = dict.fromkeys(ids, 0.0)
    learning: dict[str, Any] = {}
    started = time.perf_counter()
    for first in range(0, tasks, scenario.batch):
        batch = []
        for t in range(first, min(first + scenario.batch, tasks)):
            skills = [scenario.skill]
            if strategy in _EXTERNAL:
                target = {"round_robin": t % k, "random": int(picker.integers(k)), "oracle": int(np.argmax(truth[t]))}[strategy]
                skills.append(f"route-{target}")
            batch.append({"id": f"sim-{t:06d}", "description": f"Analyse case {t}", "required_skills": skills,
                          "success_criteria": ["done"], "estimated_duration_minutes": 30})
        thread = f"{strategy}-{seed}-{first}"
        runtime = OrchestraRuntime(app, task_app, thread_id=thread)
        await runtime.start()
        try:
            out = await runtime.run({"register_agents": agents, "submit_tasks": batch})
        finally:
            await runtime.close()
        retired = await alookup(store, thread, [str(t["id"]) for t in batch if t["id"] not in out["tasks"]])
        board = {**out["tasks"], **{tid: item["task"] for tid, item in retired.items()}}
        for tid, record in board.items():
            t = int(tid.removeprefix("sim-"))
            if record.get("agent_id") in busy:
                chosen[t] = ids.index(record["agent_id"])
                busy[record["agent_id"]] += float((record.get("report") or {}).get("duration_minutes") or 0.0)
            successes[t] = record.get("status") == "completed"
        learning = runtime.state.get("learning") or learning
        if on_batch is not None:
            on_batch(len(batch))
    missing = int((chosen < 0).sum())
    if missing:
        raise RuntimeError(f"{missing} of {tasks} simulated tasks were not allocated (strategy {strategy!r})")
    expected = truth[np.arange(tasks), chosen]
    return StrategyRun(strategy, seed, chosen, expected, truth.max(axis=1), successes, busy,
                       time.perf_counter() - started, learning)


def summary_table(runs: Sequence[StrategyRun]) -> list[dict[str, Any]]:
    """One row per strategy: median and worst % lost over seeds, success rate, wins vs ``epsilon``."""
    rows = []
    by: dict[str, list[StrategyRun]] = {}
    for run in runs:
        by.setdefault(run.strategy, []).append(run)
    eps = {r.seed: r.lost_percent for r in by.get("epsilon", [])}
    for strategy, group in by.items():
        lost = [r.lost_percent for r in group]
        rows.append({
            "strategy": strategy,
            "seeds": len(group),
            "lost_median": float(np.median(lost)),
            "lost_max": float(np.max(lost)),
            "success_rate": float(np.mean([r.success_rate for r in group])),
            "not_worse_than_epsilon": (
                sum(1 for r in group if r.seed in eps and r.lost_percent <= eps[r.seed]) if eps and strategy != "epsilon" else None
            ),
            "seconds": float(np.mean([r.seconds for r in group])),
            "learning_score": group[-1].learning.get("learning_score"),
        })
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a fixed-width text table."""
    head = f"{'strategy':<12} {'seeds':>5} {'% lost med':>10} {'% lost max':>10} {'success':>8} {'<= eps':>7} {'s/run':>7} {'learn':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        vs = "-" if r["not_worse_than_epsilon"] is None else f"{r['not_worse_than_epsilon']}/{r['seeds']}"
        score = "-" if r["learning_score"] is None else f"{r['learning_score']:.3f}"
        lines.append(
            f"{r['strategy']:<12} {r['seeds']:>5} {r['lost_median']:>10.2f} {r['lost_max']:>10.2f} "
            f"{r['success_rate']:>8.3f} {vs:>7} {r['seconds']:>7.1f} {score:>7}"
        )
    return "\n".join(lines)


def agent_shares(runs: Sequence[StrategyRun], seed: int, agents: int) -> dict[str, np.ndarray]:
    """Share of the tasks each agent did, per strategy, on one seed (each seed has its own truth)."""
    return {r.strategy: np.bincount(r.chosen, minlength=agents) / r.chosen.size for r in runs if r.seed == seed}


def write_report(runs: Sequence[StrategyRun], scenario: Scenario, out_dir: Path, *, tasks: int) -> dict[str, Path]:
    """Plots (learning curve vs the oracle, utilisation per agent) as PNG, and a markdown + HTML page.

    Raises:
        ConfigurationError: matplotlib is missing (install the ``sim`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ConfigurationError(
            "the simulation report needs matplotlib. Fix: pip install 'stellar-graph[sim]', or pass --no-report.",
            field="report",
            value=None,
        ) from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    by: dict[str, list[StrategyRun]] = {}
    for run in runs:
        by.setdefault(run.strategy, []).append(run)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(1, tasks + 1)
    for strategy, group in by.items():
        curve = np.mean([np.cumsum(r.best - r.expected) / x * 100 for r in group], axis=0)
        ax.plot(x, curve, label=strategy)
    ax.set(xlabel="tasks", ylabel="% of tasks lost vs oracle (cumulative)", title=f"Learning curve: {scenario.name}")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    curve_png = out_dir / "learning_curve.png"
    fig.savefig(curve_png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    k = scenario.agents
    width = 0.8 / max(len(by), 1)
    first_seed = runs[0].seed  # proficiencies differ per seed: show one seed's truth and choices
    for j, (strategy, share) in enumerate(agent_shares(runs, first_seed, k).items()):
        ax.bar(np.arange(k) + j * width, share, width, label=strategy)
    truth = scenario.proficiencies(first_seed)
    ax.set_xticks(np.arange(k) + 0.4, [f"agent-{i:02d}\np={truth[i]:.2f}" for i in range(k)], fontsize=7)
    ax.set(ylabel="share of tasks", title=f"Utilisation per agent (seed {runs[0].seed}; hidden p shown)")
    ax.legend(fontsize=7)
    util_png = out_dir / "utilisation.png"
    fig.savefig(util_png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    rows = summary_table(runs)
    table = format_table(rows)
    seeds = sorted({r.seed for r in runs})
    md = (
        f"# Simulation: {scenario.name}\n\n{scenario.description}\n\n"
        f"{tasks} tasks per run, batches of {scenario.batch}, {scenario.agents} agents, seeds {seeds}.\n"
        "`% lost` = 100 × Σ(best true p − true p of the chosen agent) / tasks (pseudo-regret vs the oracle).\n\n"
        f"```\n{table}\n```\n\n![learning curve](learning_curve.png)\n\n![utilisation](utilisation.png)\n"
    )
    md_path = out_dir / "report.md"
    write_text_atomic(md_path, md)
    esc = html.escape  # scenario names and descriptions come from users' files
    html_rows = "".join(
        "<tr>" + "".join(f"<td>{esc(str(v)) if not isinstance(v, float) else f'{v:.3f}'}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>Simulation: {esc(scenario.name)}</title>"
        f"<h1>Simulation: {esc(scenario.name)}</h1><p>{esc(scenario.description)}</p>"
        f"<p>{tasks} tasks per run, batches of {scenario.batch}, seeds {seeds}. % lost = pseudo-regret vs the oracle.</p>"
        f"<table border=1><tr>{''.join(f'<th>{esc(str(k))}</th>' for k in rows[0])}</tr>{html_rows}</table>"
        "<img src='learning_curve.png'><img src='utilisation.png'>"
    )
    html_path = out_dir / "report.html"
    write_text_atomic(html_path, page)
    write_text_atomic(out_dir / "summary.json", json.dumps(rows, indent=2))
    return {"learning_curve": curve_png, "utilisation": util_png, "markdown": md_path, "html": html_path}
