"""Fuzzing the edge models: any JSON-like value is either accepted or refused with the project's
own error (field, value, fix) — never a raw TypeError/KeyError/OverflowError (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stellar_graph import ConfigurationError, OrchestraConfig
from stellar_graph.models import AgentProfile, AgentRequest, OrchestraRequest, Task, parse_model
from stellar_graph.submission import accept_tasks
from stellar_graph.tokens import count_tokens

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def _near(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that use the model's own keys with arbitrary values (closer to real mistakes)."""
    return st.dictionaries(st.sampled_from(keys), JSON, max_size=len(keys))


TASK_KEYS = [*Task.model_fields]
AGENT_KEYS = [*AgentProfile.model_fields]
REQUEST_KEYS = [*OrchestraRequest.model_fields]
CONFIG = {"task_allocation": ["strategy", "weights", "max_attempts", "failure_recovery_timeout_minutes"],
          "learning_parameters": ["experience_replay_buffer_size", "exploration_rate"],
          "persistence": ["backend", "data_dir", "durability", "control_history_runs"],
          "llm": ["model", "temperature", "timeout_seconds"]}


def _config_dicts() -> st.SearchStrategy[Any]:
    sections = {s: _near(keys) for s, keys in CONFIG.items()}
    return st.one_of(JSON, st.fixed_dictionaries({}, optional=sections))


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@FUZZ
@given(st.one_of(JSON, _near(TASK_KEYS), _near(["id", "description", "required_skills", "resources", "deadline"])))
def test_tasks(data: Any) -> None:
    try:
        accept_tasks({}, [data], count_tokens, now=datetime(2026, 1, 1, tzinfo=UTC), known_agents=set())
    except ConfigurationError as exc:
        assert "Fix" in str(exc) or "fix" in str(exc), str(exc)


@FUZZ
@given(st.one_of(JSON, _near(AGENT_KEYS)))
def test_agent_profiles(data: Any) -> None:
    try:
        parse_model(AgentProfile, data, kind="agent profile")
    except ConfigurationError as exc:
        assert "Fix" in str(exc), str(exc)


@FUZZ
@given(st.one_of(JSON, _near(REQUEST_KEYS), _near(["task", "agent", "attempt", "inbox"])))
def test_orchestra_and_agent_requests(data: Any) -> None:
    for model, kind in ((OrchestraRequest, "orchestra input"), (AgentRequest, "agent input")):
        try:
            parse_model(model, data, kind=kind)
        except ConfigurationError as exc:
            assert "Fix" in str(exc), str(exc)


@FUZZ
@given(_config_dicts())
def test_configs(data: Any) -> None:
    try:
        OrchestraConfig.from_dict(data)
    except ConfigurationError as exc:
        assert "Fix" in str(exc) or "allowed" in str(exc), str(exc)
