"""Reports as users' machines write them: under a C locale, with hostile names, never half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("stellar-graph")
    return [str(script)] if script.exists() else [sys.executable, "-m", "stellar_graph.cli"]


def _c_locale() -> dict[str, str]:
    """An ASCII-only process: C locale, no locale coercion, no UTF-8 mode."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    env.pop("STELLAR_GRAPH_MODEL", None)
    return env


def test_simulate_writes_escaped_utf8_reports_under_a_c_locale(tmp_path: Path) -> None:
    scenario = tmp_path / "hostile.yaml"
    scenario.write_text('name: "<script>alert(1)</script>"\ndescription: "p < q & r"\nagents: 3\n', encoding="utf-8")
    proc = subprocess.run([*_cli(), "simulate", str(scenario), "--tasks", "20", "--strategies", "static",
                           "--out", str(tmp_path / "out")], env=_c_locale(), capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "p &lt; q &amp; r" in page
    assert "Σ(best true p" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")  # UTF-8, not the locale's
    assert json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert not list((tmp_path / "out").glob(".*.tmp"))  # written atomically: no temporary left


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nagents: ten\n", "`agents` = 'ten' is invalid.*Fix: give `agents` a value of type int"),
    ("name: x\nagnets: 3\n", r"unknown field\(s\) \['agnets'\]"),
    ("- just\n- a list\n", "must be a mapping of fields"),
])
def test_a_bad_simulation_scenario_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    from stellar_graph import ConfigurationError
    from stellar_graph.simulator import load_scenario

    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_scenario(str(path))


def test_run_writes_its_json_report_under_a_c_locale(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "run.json"
    proc = subprocess.run([*_cli(), "run", "vegapunk", "--data-dir", str(tmp_path / "data"), "--report", str(report)],
                          env=_c_locale(), cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads(report.read_text(encoding="utf-8"))["tasks"]
    assert {t["status"] for t in tasks.values()} <= {"completed", "refused", "failed", "degraded"}
    assert not list(report.parent.glob(".*.tmp"))


def test_a_configured_model_without_the_openai_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from stellar_graph import ConfigurationError, StellarOrchestra

    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # as if the extra were not installed
    StellarOrchestra({"persistence": {"backend": "memory"}})  # simulated: the extra is not needed
    with pytest.raises(ConfigurationError, match=r"pip install 'stellar-graph\[openai\]'"):
        StellarOrchestra({"persistence": {"backend": "memory"}, "llm": {"model": "gpt-4o-mini"}})
