"""Scale-out on the LangGraph API server: task runs on the server's workers (issue 13, must-show 3).

Starts ``langgraph dev`` from the repository root (``langgraph.json``: the control graph with a
:class:`~stellar_graph.runtime.ServerRunner`, the task graph) once per ``--jobs`` value, sends
``--tasks`` simulated tasks (each answer takes ``--seconds``, ``llm.simulated_seconds``) for 10 agents to one orchestra thread through ``langgraph-sdk``, and
waits until every task is finished. Printed per server: seconds to finish, tasks per second,
task-run threads, control runs, and the ratio to one job per worker, all in the same run. The
task runs post their outcomes to the Store outbox and the control runs collect them in batches
(``stellar_graph.runtime.outbox``): without that, one control run per outcome, 0.5 s apart on one
thread, would cap the orchestra at about two tasks per second whatever the workers.

Run: ``python tools/bench_server.py [--tasks 200] [--seconds 0.5] [--jobs 1 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
SKILLS = ["ethics", "engineering", "risk_analysis", "statistics", "knowledge_synthesis"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(cmd: list[str], *, port: int, health: str, log: Path, env: dict[str, str],
           cwd: Path | None = None) -> Iterator[str]:
    """Run ``cmd`` (a server listening on ``port``), its output going to ``log``, until ``health``
    answers 200; yield its URL; stop it afterwards. Raises ``RuntimeError`` with the log's tail
    if it exits or is not up within 60 s. Used by the tests' servers too."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{Path(cmd[0]).name} did not come up:\n" + log.read_text()[-4000:])
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}{health}", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def dev_server(jobs: int, *, config: Path | None = None, log: Path | None = None, cwd: Path = ROOT) -> Iterator[str]:
    """``langgraph dev --n-jobs-per-worker jobs`` on a free port, offline, in ``cwd`` (a folder with
    a ``langgraph.json``; default this repository); yields its URL."""
    port = free_port()
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true",
           "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
    for name in ("STELLAR_GRAPH_MODEL", "STELLAR_GRAPH_DATABASE_URL", "OPENAI_BASE_URL", "STELLAR_GRAPH_CONFIG"):
        env.pop(name, None)
    env.setdefault("OPENAI_API_KEY", "sk-test-dummy")
    if config is not None:
        env["STELLAR_GRAPH_CONFIG"] = str(config)
    cmd = [str(LANGGRAPH), "dev", "--no-browser", "--host", "127.0.0.1", "--port", str(port), "--no-reload",
           "--allow-blocking", "--n-jobs-per-worker", str(jobs)]
    with tempfile.TemporaryDirectory() as tmp, served(
        cmd, port=port, health="/ok", log=log or Path(tmp) / "dev.log", env=env, cwd=cwd
    ) as url:
        yield url


def workload(tasks: int) -> dict[str, Any]:
    """10 agents (two of each reference type, three Atlas) and ``tasks`` one-skill tasks."""
    agents = [spec.default_profile(f"{spec.name}-{i:03d}")
              for i, spec in enumerate((ATLAS, EDISON, LILITH, PYTHAGORAS, ATLAS) * 2)]
    work = [{"id": f"t{i:04d}", "description": f"Task {i}", "required_skills": [SKILLS[i % len(SKILLS)]]}
            for i in range(tasks)]
    return {"register_agents": agents, "submit_tasks": work}


async def run_on_server(url: str, tasks: int, *, deadline: float = 600.0) -> dict[str, Any]:
    """Send the workload to a new orchestra thread; wait until every task is finished.

    Returns:
        ``seconds``, ``thread_id``, ``values`` (the control thread's final values),
        ``task_threads`` (task id -> task-run thread ids), ``control_runs``.
    """
    from langgraph_sdk import get_client

    async with get_client(url=url, timeout=60) as client:
        thread = (await client.threads.create())["thread_id"]
        began = time.perf_counter()
        await client.runs.wait(thread, "orchestra", input=workload(tasks))
        while True:
            state = await client.threads.get_state(thread)
            board = state["values"].get("tasks") or {}
            retired = int((state["values"].get("metrics") or {}).get("pruned_tasks", 0))
            finished = sum(1 for t in board.values() if t.get("status") in {"completed", "failed", "degraded", "refused"})
            if finished + retired >= tasks and not state["next"]:
                break
            if time.perf_counter() - began > deadline:
                raise TimeoutError(f"{finished + retired} of {tasks} tasks finished after {deadline} s")
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - began
        task_threads: dict[str, list[str]] = {}
        offset = 0
        while True:
            page = await client.threads.search(metadata={"graph_id": "task"}, limit=100, offset=offset)
            for row in page:
                values = row.get("values") or {}
                task = values.get("task") or {}
                if task and (values.get("report_to") or {}).get("thread_id") == thread:
                    task_threads.setdefault(str(task["id"]), []).append(row["thread_id"])
            if len(page) < 100:
                break
            offset += 100
        runs = await client.runs.list(thread, limit=10_000)
    return {"seconds": seconds, "thread_id": thread, "values": state["values"], "task_threads": task_threads,
            "control_runs": len(runs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=0.5, help="wall time of each simulated answer")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "orchestra.yaml"
        config.write_text(f"llm:\n  simulated_seconds: {args.seconds}\n", encoding="utf-8")
        for jobs in args.jobs:
            with dev_server(jobs, config=config) as url:
                out = asyncio.run(run_on_server(url, args.tasks))
            rows.append((jobs, out))
            print(f"--n-jobs-per-worker {jobs}: {args.tasks} tasks in {out['seconds']:.1f} s "
                  f"({args.tasks / out['seconds']:.1f} tasks/s), {len(out['task_threads'])} task threads, "
                  f"{out['control_runs']} control runs", flush=True)
    base = rows[0][1]["seconds"]
    print("\nthroughput vs --n-jobs-per-worker " + str(rows[0][0]) + ": "
          + ", ".join(f"{jobs} jobs {base / out['seconds']:.2f}x" for jobs, out in rows))


if __name__ == "__main__":
    main()
