"""Config from the environment (pydantic-settings): one precedence, arguments > environment > file > defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stellar_graph import ConfigurationError, OrchestraConfig, StellarOrchestra


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "orchestra.yaml"
    path.write_text("task_allocation:\n  strategy: fast\ncollaboration:\n  negotiation_rounds_limit: 3\n"
                    "persistence:\n  data_dir: from-the-file\n", encoding="utf-8")
    return path


def test_the_environment_beats_the_file_and_arguments_beat_the_environment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STELLAR_GRAPH_TASK_ALLOCATION__STRATEGY", "optimal")
    monkeypatch.setenv("STELLAR_GRAPH_DATA_DIR", "/tmp/from-the-environment")  # the older shorthand
    from_file = OrchestraConfig.load(config_file)
    assert from_file.task_allocation.strategy == "optimal"  # environment > file
    assert from_file.collaboration.negotiation_rounds_limit == 3  # file > defaults
    assert from_file.persistence.data_dir == "/tmp/from-the-environment"  # was: the file won
    assert from_file.messaging.priority_queue_size == 1000  # defaults
    argued = OrchestraConfig.from_dict({"task_allocation": {"strategy": "greedy"}})
    assert argued.task_allocation.strategy == "greedy"  # arguments > environment
    assert OrchestraConfig.load(None).task_allocation.strategy == "optimal"  # environment > defaults
    patched = from_file.merged({"task_allocation": {"strategy": "fast"}})  # a command-line option
    assert patched.task_allocation.strategy == "fast"


def test_nested_keys_lists_and_the_long_form_beat_the_shorthand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLAR_GRAPH_MODEL", "short-model")
    monkeypatch.setenv("STELLAR_GRAPH_LLM__MODEL", "long-model")
    monkeypatch.setenv("STELLAR_GRAPH_EMERGENCY_PROTOCOLS__RECOVERY_STRATEGIES", '["retry", "escalate"]')
    monkeypatch.setenv("STELLAR_GRAPH_AGENT_TYPES", '[{"name": "cartographer", "capabilities": ["mapping"]}]')
    config = OrchestraConfig.load(None)
    assert config.llm.model == "long-model"
    assert config.emergency_protocols.recovery_strategies == ["retry", "escalate"]
    assert [t.name for t in config.agent_types] == ["cartographer"]


def test_dotenv_and_a_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STELLAR_GRAPH_ORCHESTRATION_MODE=static\nSTELLAR_GRAPH_API_KEY=not-a-config-key\n",
                                   encoding="utf-8")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "stellar_graph_llm").write_text('{"base_url": "http://llm.internal/v1"}', encoding="utf-8")
    monkeypatch.setenv("STELLAR_GRAPH_SECRETS_DIR", str(secrets))
    config = OrchestraConfig.load(None)
    assert config.orchestration_mode == "static" and config.llm.base_url == "http://llm.internal/v1"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("STELLAR_GRAPH_LLM__MODLE", "x", r"STELLAR_GRAPH_LLM__MODLE.*unknown key `llm.modle`; allowed keys here: model"),
    ("STELLAR_GRAPH_TASK_ALLOCATION__STRATEGY", "clever",
     r"STELLAR_GRAPH_TASK_ALLOCATION__STRATEGY.*`task_allocation.strategy` = 'clever'"),
])
def test_a_bad_variable_is_named_with_the_key_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        StellarOrchestra()


def test_config_show_prints_the_effective_config_and_where_the_environment_set_it(
    config_file: Path, tmp_path: Path
) -> None:
    script = Path(sys.executable).with_name("stellar-graph")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STELLAR_GRAPH_TASK_ALLOCATION__STRATEGY": "optimal"}
    proc = subprocess.run([str(script), "config", "show", "--config", str(config_file)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["task_allocation"]["strategy"] == "optimal" and shown["persistence"]["data_dir"] == "from-the-file"
    assert "set by the environment: task_allocation.strategy" in proc.stderr
