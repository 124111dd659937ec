"""Every prompt renders; a missing or unused variable is an error; the wheel ships the prompts."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stellar_graph.agents.spec import REFERENCE_TEAM
from stellar_graph.errors import ConfigurationError
from stellar_graph.prompts import available_prompts, load_prompt

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", available_prompts())
def test_every_prompt_renders(name: str) -> None:
    prompt = load_prompt(name)
    text = prompt.render(**{v: f"<{v}>" for v in prompt.variables})
    assert "${" not in text and "$" not in text.replace("$$", "")
    for v in prompt.variables:
        assert f"<{v}>" in text


def test_reference_team_prompts_exist() -> None:
    assert {s.prompt for s in REFERENCE_TEAM} | {"task"} <= set(available_prompts())


def test_missing_and_unused_variables_are_errors() -> None:
    prompt = load_prompt("atlas")
    with pytest.raises(ConfigurationError, match=r"missing \['specializations'\]"):
        prompt.render(agent_id="a", agent_name="A", capabilities="c")
    with pytest.raises(ConfigurationError, match=r"unexpected \['mood'\]"):
        prompt.render(agent_id="a", agent_name="A", capabilities="c", specializations="s", mood="x")
    with pytest.raises(ConfigurationError, match="No prompt file 'nope.md'"):
        load_prompt("nope")


@pytest.mark.slow
def test_wheel_ships_prompts_data_and_scenarios(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("stellar_graph-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for prompt in available_prompts():
        assert f"stellar_graph/prompts/{prompt}.md" in names
    assert "stellar_graph/_data/o200k_base.tiktoken.gz" in names
    assert "stellar_graph/scenarios/vegapunk.yaml" in names
    assert "stellar_graph/py.typed" in names
