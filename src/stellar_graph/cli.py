"""The ``stellar-graph`` command (typer + rich).

``stellar-graph run SCENARIO`` registers a scenario's agents, orchestrates its tasks through the
graph (SQLite under the data directory; simulated agents unless a model is configured), runs its
collaboration goals, shows progress while it runs, prints who got what and why (for each
collaboration: the plan, the bids, the votes and the outcome), and writes a JSON report.
``stellar-graph simulate`` measures learning strategies; ``stellar-graph serve`` serves the
orchestra and each agent type over HTTP; ``stellar-graph config show`` prints the effective config.

In a terminal, long commands show a progress bar and tables in colour (``NO_COLOR`` turns colour
off); piped or redirected, they print plain lines. Every option can also be set through the
environment variable its ``--help`` names.

Exit codes: 0 success, 2 bad scenario, config or arguments, 1 an unexpected failure.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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
from stellar_graph.persistence import DATA_DIR_ENV, resolved_backend, sqlite_paths
from stellar_graph.scenarios import Scenario, bundled_scenarios, load_scenario

__all__ = ["app", "main"]

app = typer.Typer(
    name="stellar-graph",
    help="Orchestrate teams of LLM agents on LangGraph: run a scenario, measure learning, serve over HTTP.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

FINAL = frozenset({"completed", "failed", "refused", "degraded", "cancelled"})
_OUTCOME_STYLE = {"completed": "green", "failed": "red", "refused": "yellow", "degraded": "yellow"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stellar-graph``; returns the exit code (a usage error exits with 2)."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal (C locale) shows '?', never a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    try:
        result = app(args=argv, prog_name="stellar-graph", standalone_mode=False)
    except typer.Exit as exc:  # --help
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # a bad option or argument: the message and the usage, exit 2
        exc.show()  # type: ignore[attr-defined]  # a UsageError (typer's vendored click)
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    return int(result or 0)


# -- output ------------------------------------------------------------------------------------------
@dataclass
class _Output:
    """Where the commands write: a progress bar and tables in a terminal, plain lines otherwise."""

    console: Console

    @classmethod
    def for_stdout(cls) -> _Output:
        return cls(Console(file=sys.stdout, highlight=False, soft_wrap=True))

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def line(self, text: str, style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False)

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """A bar in a terminal (yields ``advance(n)``); nothing when piped."""
        if not self.live or total <= 0:
            yield lambda n: None
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.update(task, advance=n)


def _fail(exc: StellarGraphError) -> int:
    Console(file=sys.stderr, highlight=False, soft_wrap=True).print(f"error: {exc}", markup=False, style="red")
    return 2


def _options(data_dir: str | None, model: str | None) -> dict[str, Any]:
    """The config keys the command-line options set (arguments beat every other source)."""
    patch: dict[str, Any] = {}
    if data_dir:
        patch["persistence"] = {"data_dir": data_dir}
    if model:
        patch["llm"] = {"model": model}
    return patch


def _missing_extra(command: str, exc: ImportError) -> int:
    print(f"error: `stellar-graph {command}` needs the `serve` extra ({exc.name} is missing): "
          "pip install 'stellar-graph[serve]'", file=sys.stderr)
    return 2


def _check_seed(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"{value} is negative; use a seed >= 0")
    return value


# -- run -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOptions:
    """What ``stellar-graph run`` was asked for."""

    scenario: str
    data_dir: str | None = None
    report: str | None = None
    thread: str | None = None
    new: bool = False
    model: str | None = None
    seed: int = 0
    quiet: bool = False


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help=f"A bundled scenario ({', '.join(bundled_scenarios())}) or a YAML file.")],
    data_dir: Annotated[str | None, typer.Option(help="Where the SQLite files go (default .stellar_graph).", envvar=DATA_DIR_ENV)] = None,
    report: Annotated[str | None, typer.Option(help="JSON report path (default reports/<scenario>-<time>.json).", envvar="STELLAR_GRAPH_REPORT")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread id (default: the unfinished last run of this scenario, else a new one).", envvar="STELLAR_GRAPH_THREAD")] = None,
    new: Annotated[bool, typer.Option("--new", help="Start a new thread even if the last run did not finish.", envvar="STELLAR_GRAPH_NEW_THREAD")] = False,
    model: Annotated[str | None, typer.Option(help="Chat model for real LLM agents, e.g. gpt-4o-mini.", envvar=MODEL_ENV)] = None,
    seed: Annotated[int, typer.Option(help="Simulation seed (>= 0).", envvar="STELLAR_GRAPH_SEED", callback=_check_seed)] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.", envvar="STELLAR_GRAPH_QUIET")] = False,
) -> int:
    """Run a scenario through the orchestra and write a JSON report."""
    options = RunOptions(scenario, data_dir, report, thread, new, model, seed, quiet)
    out = _Output.for_stdout()
    try:
        result, path = asyncio.run(_run(options, out))
    except StellarGraphError as exc:
        return _fail(exc)
    write_text_atomic(path, json.dumps(result, indent=2, default=str))
    out.line(f"report: {path}")
    return 0


async def _run(args: RunOptions, out: _Output) -> tuple[dict[str, Any], Path]:
    started = datetime.now(UTC)
    scenario = load_scenario(args.scenario, now=started)
    patch = _options(args.data_dir, args.model)
    config = scenario.config.merged(patch) if patch else scenario.config
    marker = sqlite_paths(config.persistence)[0].parent / "runs" / f"{scenario.name}.json"
    resumed = None if args.thread or args.new else _unfinished(marker)
    thread = args.thread or resumed or f"{scenario.name}-{started.strftime('%Y%m%dT%H%M%S%f')}"
    orchestra = StellarOrchestra(config, thread_id=thread, seed=args.seed)
    simulated = orchestra.simulated
    out.line(f"stellar-graph: scenario {scenario.name!r}, thread {thread!r}, {_agents_line(orchestra)}")
    if resumed:
        out.line(f"  resuming: the last run of {scenario.name!r} did not finish (`--new` starts over)")
    ids = {t["id"] for t in scenario.tasks}
    done: set[str] = set()
    _mark(marker, thread, finished=False)
    with out.progress("tasks", len(ids)) as advance:

        def show(event: dict[str, Any]) -> None:
            if not args.quiet:
                out.line(_progress_line(event), _event_style(event))
            board = orchestra.state().get("tasks") or {}
            finished = {t for t in ids - done if (board.get(t) or {}).get("status") in FINAL}
            done.update(finished)
            advance(len(finished))

        orchestra.on("*", show)
        async with orchestra:
            await _submit_missing(orchestra, scenario)  # on a resumed thread, only what it lacks
            await orchestra.wait_idle()
            records = await orchestra.get_task_records([t["id"] for t in scenario.tasks])  # board + history
            advance(len(ids) - len(done))
            state = {**orchestra.state(), "tasks": {t: r["task"] for t, r in records.items()},
                     "allocations": {r["task"]["allocation_id"]: r["allocation"] for r in records.values()
                                     if r["task"].get("allocation_id") and r["allocation"]}}
            metrics = orchestra.get_performance_metrics()
    if state.get("tasks") or not state.get("collaborations"):
        _print_summary(out, state)
        out.line(_metrics_line(metrics))
    if state.get("collaborations"):
        for record in state["collaborations"].values():
            out.line(collaboration_summary(record))
        out.line(collaboration_totals(state))
    result = _report(scenario, thread, simulated, state, metrics, started)
    _mark(marker, thread, finished=True)
    return result, Path(args.report or f"reports/{scenario.name}-{started.strftime('%Y%m%dT%H%M%S')}.json")


def _agents_line(orchestra: StellarOrchestra) -> str:
    """How the agents will work: simulated, LLM agents, or which types are which."""
    faked = orchestra.simulated_types()
    if not faked:
        return "LLM agents" if not orchestra.simulated else "agents bring their own models or graphs"
    real = [s.name for s in orchestra.agent_types.specs if s.name not in faked]
    if not real:
        return "SIMULATED agents (no model configured)"
    return f"SIMULATED agents of types {', '.join(faked)} (no model configured); own model or graph: {', '.join(real)}"


def _event_style(event: dict[str, Any]) -> str | None:
    kind = str(event.get("type", ""))
    if kind in {"task_failed", "agent_failure", "task_refused"} or kind.endswith("_failed"):
        return "red" if kind != "task_refused" else "yellow"
    return "green" if kind == "task_completed" else None


# -- simulate --------------------------------------------------------------------------------------
@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="learning, learning_degrading, or a YAML file (see stellar_graph.simulator).")],
    strategies: Annotated[str, typer.Option(help="Comma-separated, of: adaptive, epsilon, static, dynamic, round_robin, random, oracle.", envvar="STELLAR_GRAPH_SIM_STRATEGIES")] = "adaptive,static,round_robin,random",
    tasks: Annotated[int, typer.Option(help="Tasks per run.", envvar="STELLAR_GRAPH_SIM_TASKS")] = 1000,
    seed: Annotated[int, typer.Option(help="First seed.", envvar="STELLAR_GRAPH_SEED", callback=_check_seed)] = 0,
    seeds: Annotated[int, typer.Option(help="Number of seeds: seed, seed+1, ...", envvar="STELLAR_GRAPH_SIM_SEEDS")] = 1,
    out: Annotated[str | None, typer.Option(help="Report folder (default reports/simulate-<scenario>).", envvar="STELLAR_GRAPH_SIM_OUT")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Print the table only (no PNG, markdown, HTML).", envvar="STELLAR_GRAPH_SIM_NO_REPORT")] = False,
) -> int:
    """Measure learning: strategies on agents with hidden proficiencies, through the graph."""
    from stellar_graph import simulator

    logging.getLogger("stellar_graph.prediction").setLevel(logging.ERROR)  # simulated durations are noise
    output = _Output.for_stdout()
    try:
        loaded = simulator.load_scenario(scenario)
        chosen = [s.strip() for s in strategies.split(",") if s.strip()]
        bad = [s for s in chosen if s not in simulator.STRATEGIES]
        if bad or not chosen:
            raise ConfigurationError(
                f"--strategies {strategies!r}: unknown {bad}. Fix: use some of {', '.join(simulator.STRATEGIES)}.",
                field="strategies", value=strategies,
            )
        if tasks < 1 or seeds < 1:
            raise ConfigurationError("--tasks and --seeds must be >= 1.", field="tasks", value=tasks)
        if "oracle" not in chosen and not no_report:
            chosen.append("oracle")  # the learning curve's reference
        runs = []
        with output.progress("simulated tasks", tasks * seeds * len(chosen)) as advance:
            for s in range(seed, seed + seeds):
                for strategy in chosen:
                    result = asyncio.run(simulator.run_strategy(strategy, loaded, tasks=tasks, seed=s, on_batch=advance))
                    output.line(f"seed {s} {strategy:<12} % lost {result.lost_percent:6.2f}  "
                                f"success {result.success_rate:.3f}  ({result.seconds:.1f} s)")
                    runs.append(result)
        output.line("")
        output.line(simulator.format_table(simulator.summary_table(runs)))
        if not no_report:
            folder = Path(out or f"reports/simulate-{loaded.name}")
            paths = simulator.write_report(runs, loaded, folder, tasks=tasks)
            output.line(f"report: {paths['markdown']} ({paths['html'].name}, {paths['learning_curve'].name}, "
                        f"{paths['utilisation'].name})")
    except StellarGraphError as exc:
        return _fail(exc)
    return 0


# -- serve -----------------------------------------------------------------------------------------
class LogLevel(StrEnum):
    """uvicorn's log levels."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.", envvar="STELLAR_GRAPH_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", envvar="STELLAR_GRAPH_PORT")] = 8000,
    data_dir: Annotated[str | None, typer.Option(help="Where the SQLite files go (default .stellar_graph).", envvar=DATA_DIR_ENV)] = None,
    config: Annotated[str | None, typer.Option(help="A YAML/TOML config or scenario file (persistence, llm, agent_types, ...).", envvar="STELLAR_GRAPH_CONFIG")] = None,
    thread: Annotated[str | None, typer.Option(help="Thread of requests without an X-Thread-Id header.", envvar="STELLAR_GRAPH_THREAD")] = None,
    model: Annotated[str | None, typer.Option(help="Chat model for real LLM agents, e.g. gpt-4o-mini.", envvar=MODEL_ENV)] = None,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn's log level.", envvar="STELLAR_GRAPH_LOG_LEVEL")] = LogLevel.info,
) -> int:
    """Serve the orchestra and its agents over HTTP (LangServe) until interrupted."""
    try:
        import uvicorn

        from stellar_graph.serving import API_KEY_ENV, DEFAULT_THREAD, create_app
    except ImportError as exc:
        return _missing_extra("serve", exc)
    try:
        loaded = OrchestraConfig.load(config).merged(_options(data_dir, model))
        served = create_app(loaded, thread_id=thread or DEFAULT_THREAD)
    except StellarGraphError as exc:
        return _fail(exc)
    auth = "API key required (X-API-Key)" if os.environ.get(API_KEY_ENV) else f"no API key ({API_KEY_ENV} unset)"
    store = loaded.persistence
    where = {"postgres": "PostgreSQL", "memory": "memory"}.get(resolved_backend(store)) or f"SQLite in {sqlite_paths(store)[0].parent}"
    print(f"stellar-graph serve: http://{host}:{port}/orchestra and /agents/<name>; "
          f"state in {where}; {auth}", flush=True)
    uvicorn.run(served, host=host, port=port, log_level=log_level.value)
    return 0


@app.command()
def dashboard(
    data_dir: Annotated[str | None, typer.Option(help="The data directory to show (default .stellar_graph).", envvar=DATA_DIR_ENV)] = None,
    config: Annotated[str | None, typer.Option(help="A YAML/TOML config or scenario file (its persistence: SQLite or PostgreSQL).", envvar="STELLAR_GRAPH_CONFIG")] = None,
    thread: Annotated[str | None, typer.Option(help="The thread to show (default: the latest `stellar-graph run`'s).", envvar="STELLAR_GRAPH_THREAD")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.", envvar="STELLAR_GRAPH_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", envvar="STELLAR_GRAPH_PORT")] = 8001,
) -> int:
    """Show a data directory or database in the live dashboard (read-only: nothing is run)."""
    try:
        import uvicorn

        from stellar_graph.dashboard import create_dashboard_app
    except ImportError as exc:
        return _missing_extra("dashboard", exc)
    try:
        loaded = OrchestraConfig.load(config).merged(_options(data_dir, None))
        shown = thread or _latest_run(sqlite_paths(loaded.persistence)[0].parent / "runs") or "stellar-orchestra"
        served = create_dashboard_app(loaded, thread=shown)
    except StellarGraphError as exc:
        return _fail(exc)
    print(f"stellar-graph dashboard: http://{host}:{port}/dashboard (thread {shown!r})", flush=True)
    uvicorn.run(served, host=host, port=port, log_level="warning")
    return 0


def _latest_run(runs: Path) -> str | None:
    """The thread of the most recent ``stellar-graph run`` in this data directory."""
    markers = sorted(runs.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for marker in reversed(markers):
        try:
            return str(json.loads(marker.read_text(encoding="utf-8"))["thread"])
        except (OSError, ValueError, KeyError):
            continue
    return None


# -- config ----------------------------------------------------------------------------------------
@config_app.command("show")
def config_show(
    config: Annotated[str | None, typer.Option(help="A YAML/TOML config or scenario file.", envvar="STELLAR_GRAPH_CONFIG")] = None,
) -> int:
    """Print the effective config as JSON (arguments > environment > file > defaults) and the keys
    the environment set."""
    from stellar_graph.config import environment_layer

    try:
        loaded = OrchestraConfig.load(config)
        from_env = sorted(_dotted(environment_layer()))
    except StellarGraphError as exc:
        return _fail(exc)
    print(json.dumps(loaded.model_dump(mode="json"), indent=2))
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


# -- helpers ---------------------------------------------------------------------------------------
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


def _rows(state: dict[str, Any]) -> list[tuple[str, ...]]:
    tasks = sorted((state.get("tasks") or {}).values(), key=lambda t: t.get("seq", 0))
    allocations = state.get("allocations") or {}
    rows: list[tuple[str, ...]] = []
    for t in tasks:
        alloc = allocations.get(t.get("allocation_id") or "", {})
        tried = [*(t.get("excluded_agents") or [])]  # agents the recovery ladder moved it away from
        rows.append((
            str(t["id"]), str(t.get("priority", "")), str(t.get("agent_id") or (tried[-1] if tried else "-")),
            f"{alloc['score']:.3f}" if alloc.get("agent_id") else "-",
            _why(alloc, t), str(t.get("status", "")) + (" (sim)" if (t.get("report") or {}).get("simulated") else ""),
            str(t.get("result") or "").replace("\n", " "),
        ))
    return rows


_HEADER = ("task", "priority", "agent", "score", "why", "outcome", "result")
_WIDTHS = (None, None, None, None, 48, None, 40)


def _summary(state: dict[str, Any]) -> str:
    """The board as plain text (piped output): cells cut with '…' at their width."""
    rows = [_HEADER, *_rows(state)]
    cells = [[_short(str(c), w) if w else str(c) for c, w in zip(r, _WIDTHS, strict=True)] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADER))]
    lines = ["", "  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells[1:]]
    return "\n".join(lines)


def _print_summary(out: _Output, state: dict[str, Any]) -> None:
    if not out.live:
        out.line(_summary(state))
        return
    rows = _rows(state)
    table = Table(*_HEADER, header_style="bold", pad_edge=False)
    for i, (column, width) in enumerate(zip(table.columns, _WIDTHS, strict=True)):
        column.overflow, column.no_wrap, column.max_width = "ellipsis", True, width
        if width is None:  # short columns keep their width; only `why` and `result` give way
            column.min_width = max(len(r[i]) for r in [_HEADER, *rows])
    for row in rows:
        style = _OUTCOME_STYLE.get(row[5].split(" ")[0], "")
        table.add_row(*(Text(cell, style=style if i == 5 else "") for i, cell in enumerate(row)))  # Text: no markup
    out.console.print(table)


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
    if eff is None:
        return "\nno finished tasks"
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(metrics["tasks"]["by_status"].items()))
    return f"\n{by_status}; allocation efficiency {eff:.2f}"


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
