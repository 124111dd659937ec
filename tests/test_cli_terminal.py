"""The CLI as a person sees it: progress bars and colour in a terminal (a real pseudo-terminal),
plain lines when piped, NO_COLOR respected, every option's environment variable in --help."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import typer

from stellar_graph.cli import app

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("stellar-graph")
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[1-7]|9[1-7]|38;[25])[0-9;]*m")  # a foreground colour
BAR = "━"  # rich's bar


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "STELLAR_GRAPH_MODEL"}}
    return {**env, "TERM": "xterm-256color", "HOME": str(tmp_path), **extra}


def _in_terminal(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; return (exit code, screen bytes)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen([str(CLI), *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_run_in_a_terminal_shows_a_progress_bar_and_colour(tmp_path: Path) -> None:
    code, screen = _in_terminal(["run", "vegapunk", "--data-dir", str(tmp_path / "d"), "--report",
                                 str(tmp_path / "r.json")], _env(tmp_path), tmp_path)
    assert code == 0, screen
    assert BAR in screen and re.search(r"tasks\s.*11/11", screen), screen[-3000:]
    assert COLOUR.search(screen)  # outcomes coloured (completed green, refused yellow)
    assert "allocated" in screen and "report:" in screen


def test_no_color_turns_colour_off_but_keeps_the_bar(tmp_path: Path) -> None:
    code, screen = _in_terminal(["run", "vegapunk", "--data-dir", str(tmp_path / "d"), "--report",
                                 str(tmp_path / "r.json")], _env(tmp_path, NO_COLOR="1"), tmp_path)
    assert code == 0, screen
    assert BAR in screen and not COLOUR.search(screen)


def test_run_piped_prints_plain_lines(tmp_path: Path) -> None:
    proc = subprocess.run([str(CLI), "run", "vegapunk", "--data-dir", str(tmp_path / "d"), "--report",
                           str(tmp_path / "r.json")], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout and BAR not in proc.stdout
    assert "  allocated   ethics-framework -> atlas-001" in proc.stdout
    summary = proc.stdout.splitlines()[-2]
    assert re.fullmatch(r"10 completed, 1 refused; allocation efficiency 0\.\d\d", summary), summary  # no raw dict
    assert "…" in proc.stdout  # long cells are cut with an ellipsis, not silently


def test_simulate_in_a_terminal_shows_progress_per_task(tmp_path: Path) -> None:
    code, screen = _in_terminal(["simulate", "learning", "--tasks", "30", "--strategies", "static",
                                 "--no-report"], _env(tmp_path), tmp_path)
    assert code == 0, screen
    assert BAR in screen and "simulated tasks" in screen and "30/30" in screen


def test_every_option_names_its_environment_variable() -> None:
    command = typer.main.get_command(app)
    seen = 0
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        subs = getattr(sub, "commands", {name: sub})
        for leaf in subs.values():
            for param in leaf.params:
                if param.param_type_name == "option" and param.name != "help":
                    assert param.envvar and param.show_envvar, (name, param.name)
                    seen += 1
    assert seen >= 20
    proc = subprocess.run([str(CLI), "serve", "--help"], env={**os.environ, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert "env var: STELLAR_GRAPH_PORT" in proc.stdout and "env var: STELLAR_GRAPH_MODEL" in proc.stdout
    top = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    assert "``" not in top and ":mod:" not in top  # no raw reStructuredText
