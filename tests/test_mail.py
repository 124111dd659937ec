"""Bus messages reach agents with their next task, in priority order, durably and once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stellar_graph import ATLAS, PYTHAGORAS, AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured

MEMORY = {"persistence": {"backend": "memory"}}
WORKER = Path(__file__).with_name("mail_worker.py")


async def test_messages_are_part_of_the_agents_next_task(fixed_clock) -> None:
    prompts: list[str] = []

    def call(messages):
        prompts.append(messages[-1].content)
        return structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))

    model = ScriptedChatModel(responses=[call] * 3)
    async with StellarOrchestra(MEMORY, model=model, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        await orchestra.register_agent(ATLAS.default_profile("atlas-001"))
        # The seed's broadcast, plus a direct, lower-priority note.
        broadcast = await orchestra.message_bus.send_priority_message({
            "sender": "stellar-orchestra", "recipients": ["all-agents"], "message_type": "emergency",
            "priority_level": 10, "content": {"alert": "System maintenance required"},
        })
        note = await orchestra.send_priority_message({
            "sender": "atlas-001", "recipients": ["pythagoras-001"], "message_type": "note",
            "priority_level": 3, "content": {"hint": "use the 2025 data"}, "requires_ack": True,
        })
        await orchestra.orchestrate_task({"id": "t1", "description": "Analyse", "required_skills": ["statistics"]})
        await orchestra.wait_idle()
        first = prompts[0]
        assert "Messages for you:" in first
        alert, hint = first.index("System maintenance required"), first.index("use the 2025 data")
        assert alert < hint  # priority 10 before priority 3
        state = orchestra.state()
        assert "pythagoras-001" not in state.get("mailbox", {})  # read, so cleared
        assert state["mailbox"]["atlas-001"][broadcast]["content"] == {"alert": "System maintenance required"}
        assert {broadcast, note} <= set(state["delivered_messages"])
        assert orchestra.message_bus.receipts(note)["pythagoras-001"] == "acked"

        await orchestra.orchestrate_task({"id": "t2", "description": "Again", "required_skills": ["statistics"]})
        await orchestra.wait_idle()
        assert "Messages for you:" not in prompts[1]  # delivered once


async def test_mail_for_an_agent_no_state_lists_waits_on_the_bus_and_costs_one_state_read(fixed_clock) -> None:
    model = ScriptedChatModel(responses=[structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))] * 3)
    async with StellarOrchestra(MEMORY, model=model, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        orchestra.message_bus.register("outsider")  # on the bus only: no task of the orchestra's
        await orchestra.send_priority_message({
            "sender": "ops", "recipients": ["outsider"], "message_type": "note", "content": {"n": 1},
        })
        runtime = orchestra._runtime
        assert runtime is not None
        reads, refresh = [], runtime._refresh

        async def counted() -> None:
            reads.append(1)
            await refresh()

        runtime._refresh = counted  # type: ignore[method-assign]
        for task_id in ("t1", "t2", "t3"):
            await orchestra.orchestrate_task({"id": task_id, "description": "x", "required_skills": ["statistics"]})
        await orchestra.wait_idle()
        assert len(reads) == 1  # maybe another process registered it: read once, not every run
        assert [m.content for m in orchestra.message_bus.drain("outsider")] == [{"n": 1}]  # not dropped


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_accepted_messages_survive_kill_and_are_delivered_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "seen.log"
    env = {**os.environ, "STELLAR_GRAPH_DATA_DIR": str(data_dir)}
    env.pop("STELLAR_GRAPH_DATABASE_URL", None)
    if backend == "postgres":  # the bus follows the checkpoints into the database
        env["STELLAR_GRAPH_DATABASE_URL"] = request.getfixturevalue("postgres_url")

    def run(mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKER), str(data_dir), str(log), mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)

    sender = run("send")
    assert sender.stdout is not None and sender.stdout.readline().strip() == "READY"
    sender.send_signal(signal.SIGKILL)
    sender.communicate(timeout=10)

    for task in ("task:t1", "task:t2"):
        proc = run(task)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "DONE" in out, err

    seen = re.findall(r"seen (m\d)", log.read_text())
    assert seen == ["m2", "m1", "m0"]  # all three, once, highest priority first; none on t2
    databases = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if _is_sqlite(p))
    if backend == "postgres":
        assert databases == []  # nothing on the local disk: a second machine sees the same bus
    else:
        assert {"data/bus.sqlite", "data/checkpoints.sqlite", "data/store.sqlite"} <= set(databases)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_live_process_delivers_what_a_killed_one_accepted(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two processes on one orchestra thread (one SQLite data directory, or one PostgreSQL
    database): one accepts messages and is killed; the other, which kept running, takes them over
    and its agent sees them, once."""
    log = tmp_path / "seen.log"
    env = {**os.environ, "STELLAR_GRAPH_DATA_DIR": str(tmp_path / "data")}
    env.pop("STELLAR_GRAPH_DATABASE_URL", None)
    if backend == "postgres":
        env["STELLAR_GRAPH_DATABASE_URL"] = request.getfixturevalue("postgres_url")

    def run(mode: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "data"), str(log), mode],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=tmp_path)

    survivor = run("wait:t1")
    try:
        assert survivor.stdout is not None and survivor.stdout.readline().strip() == "READY"
        sender = run("send")
        assert sender.stdout is not None and sender.stdout.readline().strip() == "READY"
        sender.send_signal(signal.SIGKILL)
        sender.communicate(timeout=10)
        out, err = survivor.communicate("go\n", timeout=90)
        assert survivor.returncode == 0 and "DONE" in out, err
    finally:
        survivor.kill()
    assert re.findall(r"seen (m\d)", log.read_text()) == ["m2", "m1", "m0"]
    if backend == "postgres":
        assert not [p for p in tmp_path.rglob("*") if _is_sqlite(p)]


def _is_sqlite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.read(16) == b"SQLite format 3\x00" or path.name.endswith((".sqlite", ".sqlite-wal", ".db"))
