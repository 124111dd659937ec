"""Scenarios for the CLI: a team of agents, a batch of tasks, collaboration goals and optional config.

``load_scenario("vegapunk")`` loads a bundled scenario; any other argument is a file path.
Relative deadlines (``"+90m"``, ``"+8h"``, ``"+2d"``) are resolved against ``now``. Each entry of
``collaborations`` is ``{goal: {...}, agent_ids: [...]}`` plus options (``consensus``,
``when_full``, ``bid_notes``), as in the graph input ``start_collaborations``. ``agent_types``
declares the scenario's own agent types (``OrchestraConfig.agent_types``; paths relative to the
file), which its ``agents`` may then be instances of.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from stellar_graph.collaboration.models import parse_request
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import ConfigurationError, InvalidInputError
from stellar_graph.models import AgentProfile, Task, parse_model

__all__ = ["Scenario", "bundled_scenarios", "load_scenario"]

_HERE = Path(__file__).parent
_RELATIVE = re.compile(r"^\+(?P<n>\d+(?:\.\d+)?)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_KEYS = {"name", "description", "config", "agent_types", "agents", "tasks", "collaborations"}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    name: str
    description: str
    config: OrchestraConfig
    agents: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    collaborations: list[dict[str, Any]] = field(default_factory=list)


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def load_scenario(name_or_path: str, *, now: datetime) -> Scenario:
    """Load and validate a scenario.

    Raises:
        ConfigurationError: the file is missing or not YAML, or its config is invalid.
        InvalidInputError: an agent or task is invalid (the message names ``tasks[i].field``).
    """
    path = _HERE / f"{name_or_path}.yaml" if name_or_path in bundled_scenarios() else Path(name_or_path)
    if not path.is_file():
        raise ConfigurationError(
            f"Scenario {name_or_path!r} is neither a bundled scenario {bundled_scenarios()} nor a file.",
            field="scenario",
            value=name_or_path,
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"Scenario file {str(path)!r} is not UTF-8 text. Fix: pass a YAML scenario file "
            f"(see the bundled ones: {bundled_scenarios()}).",
            field="scenario",
            value=str(path),
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"Scenario file {str(path)!r} is not valid YAML: {exc}", field="scenario") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"Scenario file {str(path)!r} must hold a mapping with keys {sorted(_KEYS)}.")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigurationError(f"Scenario {str(path)!r} has unknown key(s) {unknown}; allowed: {sorted(_KEYS)}.")
    agents = _validated(data.get("agents") or [], AgentProfile, "agents", now)
    tasks = _validated(data.get("tasks") or [], Task, "tasks", now)
    collaborations = _collaborations(data.get("collaborations") or [], now)
    return Scenario(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or ""),
        config=OrchestraConfig.from_file(path),  # its `config` and `agent_types` (paths relative to it)
        agents=agents,
        tasks=tasks,
        collaborations=collaborations,
    )


def _validated(items: Any, model: type[AgentProfile] | type[Task], key: str, now: datetime) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise ConfigurationError(f"Scenario key `{key}` must be a list, got {type(items).__name__}.", field=key)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("deadline"), str):
            item = {**item, "deadline": _deadline(item["deadline"], now)}
        try:
            out.append(parse_model(model, item, kind=f"{key}[{i}]").model_dump(mode="json"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"Scenario {key}[{i}]: {exc}", errors=exc.errors) from None
    return out


def _collaborations(items: Any, now: datetime) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise ConfigurationError(f"Scenario key `collaborations` must be a list, got {type(items).__name__}.", field="collaborations")
    out = []
    for i, item in enumerate(items):
        goal = item.get("goal") if isinstance(item, dict) else None
        if isinstance(goal, dict) and isinstance(goal.get("deadline"), str):
            item = {**item, "goal": {**goal, "deadline": _deadline(goal["deadline"], now)}}
        try:
            out.append(parse_request(item, index=i).model_dump(mode="json"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"Scenario collaborations[{i}]: {exc}", errors=exc.errors) from None
    return out


def _deadline(text: str, now: datetime) -> str:
    match = _RELATIVE.match(text.strip())
    if match is None:
        return text
    try:
        return (now + timedelta(**{_UNITS[match["unit"]]: float(match["n"])})).isoformat()
    except OverflowError:
        raise InvalidInputError(
            f"Invalid deadline {text!r}: it falls after the year 9999. Fix: use a nearer relative "
            "deadline (for example '+30d') or an ISO date.",
            errors=[{"field": "deadline", "value": text, "message": "after the year 9999"}],
        ) from None
