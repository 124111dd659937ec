"""The ``stellar-graph`` command.

``stellar-graph run SCENARIO`` registers a scenario's agents, orchestrates its tasks through the
graph (SQLite under the data directory; simulated agents unless a model is configured), runs its
collaboration goals, shows progress while it runs, prints who got what and why (for each
collaboration: the plan, the bids, the votes and the outcome), and writes a JSON report.

``stellar-graph serve`` serves the orchestra and each agent type over HTTP (LangServe routes,
``/healthz``, ``/metrics``; see :mod:`stellar_graph.serving`) until interrupted.

Exit codes: 0 success, 2 bad scenario, config or arguments, 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from stellar_graph._files import write_text_atomic
from stellar_graph.collaboration.report import (
    collaboration_progress_line,
    collaboration_summary,
    collaboration_totals,
)
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import ConfigurationError, StellarGraphError
from stellar_graph.llm import MODEL_ENV
from stellar_graph.orchestra import StellarOrchestra
from stellar_graph.persistence import DATABASE_URL_ENV, sqlite_paths
from stellar_graph.scenarios import Scenario, bundled_scenarios, load_scenario

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stellar-graph``; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal (C locale) shows '?', never a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "config":
        return _config_show(args)
    try:
        report, path = asyncio.run(_run(args, sys.stdout))
    except StellarGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_text_atomic(path, json.dumps(report, indent=2, default=str))
    print(f"report: {path}")
    return 0


def _seed(text: str) -> int:
    """A simulation seed: a whole number >= 0 (numpy refuses negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; use 0, 1, 2, ...") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use a seed >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stellar-graph", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario through the orchestra")
    run.add_argument("scenario", help=f"a bundled scenario ({', '.join(bundled_scenarios())}) or a YAML file")
    run.add_argument("--data-dir", default=None, help="where the SQLite files go (default .stellar_graph)")
    run.add_argument("--report", default=None, help="JSON report path (default reports/<scenario>-<time>.json)")
    run.add_argument("--thread", default=None,
                     help="thread id (default: the unfinished last run of this scenario, else a new one)")
    run.add_argument("--new", action="store_true", help="start a new thread even if the last run did not finish")
    run.add_argument("--model", default=None, help=f"chat model for real LLM agents (or set {MODEL_ENV})")
    run.add_argument("--seed", type=_seed, default=0, help="simulation seed (>= 0)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    sim = sub.add_parser("simulate", help="measure learning: strategies on agents with hidden proficiencies")
    sim.add_argument("scenario", help="learning, learning_degrading, or a YAML file (see stellar_graph.simulator)")
    sim.add_argument("--strategies", default="adaptive,static,round_robin,random",
                     help="comma-separated, of: adaptive, epsilon, static, dynamic, round_robin, random, oracle")
    sim.add_argument("--tasks", type=int, default=1000, help="tasks per run (default 1000)")
    sim.add_argument("--seed", type=_seed, default=0, help="first seed (default 0)")
    sim.add_argument("--seeds", type=int, default=1, help="number of seeds: seed, seed+1, ... (default 1)")
    sim.add_argument("--out", default=None, help="report folder (default reports/simulate-<scenario>)")
    sim.add_argument("--no-report", action="store_true", help="print the table only (no PNG, markdown, HTML)")
    serve = sub.add_parser("serve", help="serve the orchestra and its agents over HTTP (LangServe)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--data-dir", default=None, help="where the SQLite files go (default .stellar_graph)")
    serve.add_argument("--config", default=None, help="a YAML/TOML config file (persistence, llm, ...)")
    serve.add_argument("--thread", default=None, help="thread of requests without an X-Thread-Id header")
    serve.add_argument("--model", default=None, help=f"chat model for real LLM agents (or set {MODEL_ENV})")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    config = sub.add_parser("config", help="show the effective config (file, environment, defaults)")
    config.add_argument("action", choices=["show"], help="show: print the effective config as JSON")
    config.add_argument("--config", default=None, help="a YAML/TOML config or scenario file")
    return parser


def _config_show(args: argparse.Namespace) -> int:
    """``stellar-graph config show``: the config a run would use, and the keys the environment set."""
    from stellar_graph.config import environment_layer

    try:
        config = OrchestraConfig.load(args.config)
        from_env = sorted(_dotted(environment_layer()))
    except StellarGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    print(f"set by the environment: {', '.join(from_env) or 'nothing'}", file=sys.stderr)
    return 0


def _dotted(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += _dotted(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def _simulate(args: argparse.Namespace) -> int:
    """``stellar-graph simulate``: every strategy on every seed through the graph; table and report."""
    from stellar_graph import simulator

    logging.getLogger("stellar_graph.prediction").setLevel(logging.ERROR)  # simulated durations are noise
    try:
        scenario = simulator.load_scenario(args.scenario)
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
        bad = [s for s in strategies if s not in simulator.STRATEGIES]
        if bad or not strategies:
            raise ConfigurationError(
                f"--strategies {args.strategies!r}: unknown {bad}. Fix: use some of {', '.join(simulator.STRATEGIES)}.",
                field="strategies", value=args.strategies,
            )
        if args.tasks < 1 or args.seeds < 1:
            raise ConfigurationError("--tasks and --seeds must be >= 1.", field="tasks", value=args.tasks)
        if "oracle" not in strategies and not args.no_report:
            strategies.append("oracle")  # the learning curve's reference
        runs = []
        for seed in range(args.seed, args.seed + args.seeds):
            for strategy in strategies:
                run = asyncio.run(simulator.run_strategy(strategy, scenario, tasks=args.tasks, seed=seed))
                print(f"seed {seed} {strategy:<12} % lost {run.lost_percent:6.2f}  success {run.success_rate:.3f}  ({run.seconds:.1f} s)", flush=True)
                runs.append(run)
        print()
        print(simulator.format_table(simulator.summary_table(runs)))
        if not args.no_report:
            out = Path(args.out or f"reports/simulate-{scenario.name}")
            paths = simulator.write_report(runs, scenario, out, tasks=args.tasks)
            print(f"report: {paths['markdown']} ({paths['html'].name}, {paths['learning_curve'].name}, {paths['utilisation'].name})")
    except StellarGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``stellar-graph serve``: build the app and run it under uvicorn until interrupted."""
    try:
        import uvicorn

        from stellar_graph.serving import API_KEY_ENV, DEFAULT_THREAD, create_app
    except ImportError as exc:
        print(f"error: `stellar-graph serve` needs the `serve` extra ({exc.name} is missing): "
              "pip install 'stellar-graph[serve]'", file=sys.stderr)
        return 2
    patch: dict[str, Any] = {}
    if args.data_dir:
        patch["persistence"] = {"data_dir": args.data_dir}
    if args.model:
        patch["llm"] = {"model": args.model}
    try:
        config = OrchestraConfig.load(args.config).merged(patch)
        app = create_app(config, thread_id=args.thread or DEFAULT_THREAD)
    except StellarGraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auth = "API key required (X-API-Key)" if os.environ.get(API_KEY_ENV) else f"no API key ({API_KEY_ENV} unset)"
    store = config.persistence
    where = ("PostgreSQL" if store.backend != "memory" and (store.database_url or os.environ.get(DATABASE_URL_ENV))
             else "memory" if store.backend == "memory" else f"SQLite in {sqlite_paths(store)[0].parent}")
    print(f"stellar-graph serve: http://{args.host}:{args.port}/orchestra and /agents/<name>; "
          f"state in {where}; {auth}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


async def _run(args: argparse.Namespace, out: TextIO) -> tuple[dict[str, Any], Path]:
    started = datetime.now(UTC)
    scenario = load_scenario(args.scenario, now=started)
    patch: dict[str, Any] = {}
    if args.data_dir:
        patch["persistence"] = {"data_dir": args.data_dir}
    if args.model:
        patch["llm"] = {"model": args.model}
    config = scenario.config.merged(patch) if patch else scenario.config
    marker = sqlite_paths(config.persistence)[0].parent / "runs" / f"{scenario.name}.json"
    resumed = None if args.thread or args.new else _unfinished(marker)
    thread = args.thread or resumed or f"{scenario.name}-{started.strftime('%Y%m%dT%H%M%S%f')}"
    orchestra = StellarOrchestra(config, thread_id=thread, seed=args.seed)
    simulated = orchestra.simulated
    print(f"stellar-graph: scenario {scenario.name!r}, thread {thread!r}, "
          f"{'SIMULATED agents (no model configured)' if simulated else 'LLM agents'}", file=out)
    if resumed:
        print(f"  resuming: the last run of {scenario.name!r} did not finish (`--new` starts over)", file=out)
    if not args.quiet:
        orchestra.on("*", lambda e: print(_progress_line(e), file=out, flush=True))
    _mark(marker, thread, finished=False)
    async with orchestra:
        await _submit_missing(orchestra, scenario)  # on a resumed thread, only what it lacks
        await orchestra.wait_idle()
        records = await orchestra.get_task_records([t["id"] for t in scenario.tasks])  # board + history
        state = {**orchestra.state(), "tasks": {t: r["task"] for t, r in records.items()},
                 "allocations": {r["task"]["allocation_id"]: r["allocation"] for r in records.values()
                                 if r["task"].get("allocation_id") and r["allocation"]}}
        metrics = orchestra.get_performance_metrics()
    if state.get("tasks") or not state.get("collaborations"):
        print(_summary(state), file=out)
        print(_metrics_line(metrics), file=out)
    if state.get("collaborations"):
        for record in state["collaborations"].values():
            print(collaboration_summary(record), file=out)
        print(collaboration_totals(state), file=out)
    report = _report(scenario, thread, simulated, state, metrics, started)
    _mark(marker, thread, finished=True)
    return report, Path(args.report or f"reports/{scenario.name}-{started.strftime('%Y%m%dT%H%M%S')}.json")


async def _submit_missing(orchestra: StellarOrchestra, scenario: Scenario) -> None:
    """Register the scenario's agents and submit its tasks and goals that the thread lacks."""
    for agent in scenario.agents:
        if agent["agent_id"] not in orchestra.registered_agents():
            await orchestra.register_agent(agent)
    known = await orchestra.get_task_records([t["id"] for t in scenario.tasks])
    tasks = [t for t in scenario.tasks if t["id"] not in known]
    if tasks or not (scenario.collaborations or scenario.tasks):
        await orchestra.orchestrate_multiple_tasks(tasks)
    goals = orchestra.state().get("collaborations") or {}
    collaborations = [c for c in scenario.collaborations if c["goal"]["id"] not in goals]
    if collaborations:
        await orchestra.submit_run({"start_collaborations": collaborations})


def _unfinished(marker: Path) -> str | None:
    """The thread of the scenario's last run if that run did not finish (killed, crashed)."""
    try:
        last = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if last.get("finished") else str(last.get("thread") or "") or None


def _mark(marker: Path, thread: str, *, finished: bool) -> None:
    write_text_atomic(marker, json.dumps({"thread": thread, "finished": finished}))


def _progress_line(event: dict[str, Any]) -> str:
    kind = event.get("type", "?")
    if kind.startswith("collaboration"):
        return collaboration_progress_line(event)
    if kind == "agent_registered":
        return f"  registered  {event.get('agent_id')}"
    if kind == "workload_imbalance":
        return f"  imbalance   busiest {event.get('busiest_agent')} (backlog ratio {event.get('ratio')})"
    if kind == "system_optimized":
        return f"  optimised   {event.get('reason')}: improvement {event.get('improvement_percentage')}%"
    task, agent = event.get("task_id"), event.get("agent_id")
    if task is None:  # an agent's event (agent_failure, agent_recovered, ...): who and why
        reason = event.get("reason") or event.get("error")
        return f"  {kind.removeprefix('agent_'):<11} {agent or '-'}" + (f": {reason}" if reason else "")
    if kind == "task_failed":
        return f"  failed      {task} on {agent}: {event.get('error')}"
    return f"  {kind.removeprefix('task_'):<11} {task}" + (f" -> {agent}" if agent else "")


def _summary(state: dict[str, Any]) -> str:
    tasks = sorted((state.get("tasks") or {}).values(), key=lambda t: t.get("seq", 0))
    allocations = state.get("allocations") or {}
    rows = [("task", "priority", "agent", "score", "why", "outcome", "result")]
    for t in tasks:
        alloc = allocations.get(t.get("allocation_id") or "", {})
        tried = [*(t.get("excluded_agents") or [])]  # agents the recovery ladder moved it away from
        rows.append((
            t["id"], t.get("priority", ""), t.get("agent_id") or (tried[-1] if tried else "-"),
            f"{alloc['score']:.3f}" if alloc.get("agent_id") else "-",
            _why(alloc, t), t.get("status", "") + (" (sim)" if (t.get("report") or {}).get("simulated") else ""),
            _short(str(t.get("result") or "").replace("\n", " "), 40),
        ))
    widths = [min(max(len(str(r[i])) for r in rows), 48) for i in range(len(rows[0]))]
    lines = ["", "  ".join(str(c).ljust(w)[:w] for c, w in zip(rows[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w)[:w] for c, w in zip(r, widths, strict=True)) for r in rows[1:]]
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _why(alloc: dict[str, Any], task: dict[str, Any]) -> str:
    if task.get("status") in {"failed", "degraded"} and task.get("error"):
        return str(task["error"])[:48]  # what went wrong, not why it was once allocated
    if not alloc.get("agent_id"):
        reasons = alloc.get("reasons") or {}
        return (next(iter(reasons.values()), "") if reasons else alloc.get("explanation", ""))[:48]
    weights, breakdown = alloc.get("weights") or {}, alloc.get("breakdown") or {}
    top = sorted(breakdown, key=lambda f: -weights.get(f, 0) * breakdown[f])[:3]
    return ", ".join(f"{f} {breakdown[f]:.2f}" for f in top)


def _metrics_line(metrics: dict[str, Any]) -> str:
    eff = metrics["task_allocation"]["efficiency"]
    tasks = metrics["tasks"]
    return (f"\ncompleted {tasks['completed']}, failed {tasks['failed']}, by status {tasks['by_status']}; "
            f"efficiency {eff:.2f}" if eff is not None else "\nno finished tasks")


def _report(scenario: Scenario, thread: str, simulated: bool, state: dict[str, Any], metrics: dict[str, Any], started: datetime) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "thread_id": thread,
        "simulated": simulated,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "agents": state.get("agents"),
        "tasks": state.get("tasks"),
        "allocations": state.get("allocations"),
        "collaborations": state.get("collaborations"),
        "metrics": metrics,
    }


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
