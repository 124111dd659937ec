"""Start the `stellar-graph` command as a real HTTP server for a test, on a free port."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from bench_server import free_port, served  # tools/: the same helper starts `langgraph dev`

__all__ = ["cli", "free_port", "safe_env", "stellar_server"]

UNSAFE = ("STELLAR_GRAPH_MODEL", "STELLAR_GRAPH_DATABASE_URL", "OPENAI_BASE_URL", "STELLAR_GRAPH_CONFIG",
          "STELLAR_GRAPH_API_KEY")
"""Variables of the developer's shell that would point a test at a real model, database or key."""


def cli() -> list[str]:
    """The installed `stellar-graph` console script (or the module, if it is not installed)."""
    script = Path(sys.executable).with_name("stellar-graph")
    return [str(script)] if script.exists() else [sys.executable, "-m", "stellar_graph.cli"]


def safe_env(**extra: str) -> dict[str, str]:
    """This process's environment without :data:`UNSAFE`, a dummy OpenAI key, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in UNSAFE}
    return {**env, "OPENAI_API_KEY": "sk-test-dummy", **extra}


@contextmanager
def stellar_server(args: list[str], *, log: Path, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> Iterator[str]:
    """``stellar-graph <args> --port <free>`` until ``/healthz`` answers; yields its URL and stops
    it afterwards (its output goes to ``log``)."""
    port = free_port()
    with served([*cli(), *args, "--port", str(port)], port=port, health="/healthz", log=log,
                env=env if env is not None else safe_env(), cwd=cwd) as url:
        yield url
