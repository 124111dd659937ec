"""`OrchestraConfig`: the seed's whole configuration tree, with its defaults.

Load it from Python (keyword arguments or a dict) or from a YAML or TOML file. Unknown keys and bad
values fail at once with the dotted key path, the bad value and the allowed values.

Every key can also come from the environment (pydantic-settings): ``STELLAR_GRAPH_<SECTION>__<KEY>``
(``STELLAR_GRAPH_TASK_ALLOCATION__STRATEGY=optimal``; a whole section or list as JSON), read from
the process environment, a ``.env`` file in the working directory and, when
``STELLAR_GRAPH_SECRETS_DIR`` names one, a secrets directory (one file per top-level key, named
like the variable, holding JSON). The shorthands ``STELLAR_GRAPH_MODEL``, ``STELLAR_GRAPH_DATA_DIR``
and ``STELLAR_GRAPH_DATABASE_URL`` set ``llm.model``, ``persistence.data_dir`` and
``persistence.database_url``. One precedence everywhere: arguments (a dict or keywords passed in
Python, command-line options) > environment > file > defaults.

Example:
    >>> cfg = OrchestraConfig.from_dict({"task_allocation": {"strategy": "optimal"}})
    >>> cfg.collaboration.negotiation_rounds_limit
    5
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stellar_graph.errors import ConfigurationError
from stellar_graph.models import FACTORS, check_amounts

__all__ = [
    "DEFAULT_WEIGHTS",
    "ENV_PREFIX",
    "AgentTypeConfig",
    "CollaborationConfig",
    "EmergencyProtocolsConfig",
    "LearningParametersConfig",
    "LLMConfig",
    "MessagingConfig",
    "OptimizationConfig",
    "OrchestraConfig",
    "PersistenceConfig",
    "TaskAllocationConfig",
    "environment_layer",
]

ENV_PREFIX = "STELLAR_GRAPH_"
SECRETS_DIR_ENV = "STELLAR_GRAPH_SECRETS_DIR"
ENV_SHORTHANDS: Mapping[str, tuple[str, str]] = {
    "STELLAR_GRAPH_MODEL": ("llm", "model"),
    "STELLAR_GRAPH_DATA_DIR": ("persistence", "data_dir"),
    "STELLAR_GRAPH_DATABASE_URL": ("persistence", "database_url"),
}
"""Older single variables, kept: each sets one key unless its ``<SECTION>__<KEY>`` form is set too."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "skills": 0.40,
    "resources": 0.10,
    "workload": 0.20,
    "deadline": 0.20,
    "collaboration": 0.10,
}


RecoveryStrategy = Literal["retry", "reassign", "fallback", "escalate"]
_DEFAULT_RECOVERY: tuple[RecoveryStrategy, ...] = ("retry", "reassign", "fallback")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TaskAllocationConfig(_Section):
    """How tasks are placed on agents."""

    strategy: Literal["auto", "optimal", "fast", "greedy"] = "auto"
    """``auto`` solves exactly when affordable, else the fast path."""
    rebalancing_frequency_minutes: float = Field(default=60, gt=0)
    failure_recovery_timeout_minutes: float = Field(default=30, gt=0)
    """A task still recovering this long after its first reassignment is not reassigned again:
    it ends the ladder (escalate, fallback or the failure). Checked at each failed attempt."""
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Factor weights; must cover the five factors and sum to 1."""
    past_deadline: Literal["flag", "refuse"] = "flag"
    """A task whose deadline already passed is allocated and flagged ``overdue`` or refused."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts per task, counting reassignments to another agent after an agent error."""
    agent_failure_threshold: int = Field(default=2, ge=1, le=100)
    """Agent errors in a row after which an agent is taken out and its queue re-planned."""
    dependency_failure: Literal["fail", "hold"] = "fail"
    """When a dependency fails: fail its dependents at once, or hold them (status ``held``)."""

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown factor(s) {unknown}; allowed: {list(FACTORS)}")
        merged = check_amounts({f: float(v.get(f, 0.0)) for f in FACTORS}, "weights")
        total = sum(merged.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1, they sum to {total:.6g}: {merged}")
        return merged


class CollaborationConfig(_Section):
    """Multi-agent collaboration limits."""

    max_concurrent_collaborations: int = Field(default=10, ge=1)
    conflict_resolution_timeout_minutes: float = Field(default=15, gt=0)
    negotiation_rounds_limit: int = Field(default=5, ge=1, le=100)
    overflow: Literal["queue", "reject"] = "queue"
    """Beyond ``max_concurrent_collaborations``: queue the next goal, or reject it."""


class OptimizationConfig(_Section):
    """The optimizer's learning and schedule."""

    learning_rate: float = Field(default=0.01, gt=0, le=1)
    adaptation_threshold: float = Field(default=0.1, ge=0, le=1)
    optimization_frequency_minutes: float = Field(default=120, gt=0)


class MessagingConfig(_Section):
    """The message bus."""

    priority_queue_size: int = Field(default=1000, ge=1)
    broadcast_batch_size: int = Field(default=50, ge=1)
    consensus_timeout_minutes: float = Field(default=10, gt=0)


class EmergencyProtocolsConfig(_Section):
    """What happens when things go wrong."""

    auto_escalation: bool = True
    notification_channels: list[Literal["email", "slack", "webhook"]] = Field(default_factory=list)
    recovery_strategies: list[RecoveryStrategy] = Field(default_factory=lambda: list(_DEFAULT_RECOVERY))
    retry_max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts of one agent at one task before the next rung (``retry`` strategy)."""
    retry_initial_interval_seconds: float = Field(default=0.5, ge=0, le=60)
    max_retry_after_seconds: float = Field(default=30, ge=0, le=600)
    """Cap on a provider's ``Retry-After`` honoured before a retry."""
    agent_timeout_seconds: float = Field(default=120, gt=0)
    """Time limit of one agent attempt; a timed-out attempt enters the ladder."""
    fallback_agent: str | None = None
    """Agent id that takes a task when no other feasible agent is left (``fallback`` strategy);
    without one, the task ends with a degraded result that says so."""


class LearningParametersConfig(_Section):
    """Adaptive learning from outcomes."""

    experience_replay_buffer_size: int = Field(default=10_000, ge=1, le=10_000_000)
    learning_decay_factor: float = Field(default=0.95, gt=0, le=1)
    exploration_rate: float = Field(default=0.1, ge=0, le=1)
    exploration_strategy: Literal["thompson", "epsilon_decay", "constant_epsilon", "greedy"] = "thompson"
    """How ``adaptive`` mode explores (not in the seed): Thompson sampling with a decaying uniform
    share capped by ``exploration_rate`` (default), epsilon decaying as 1/t, a constant
    ``exploration_rate``, or none (greedy on posterior means)."""


class PersistenceConfig(_Section):
    """Where state lives. Not in the seed; added so one file configures a deployment."""

    backend: Literal["sqlite", "memory", "postgres"] = "sqlite"
    data_dir: str = ".stellar_graph"
    database_url: str | None = None
    durability: Literal["sync", "async", "exit"] = "exit"
    """LangGraph durability of the task runs. ``exit`` (default) checkpoints a task run once, at
    its end; a run cut short by a crash starts again from its input, and its agent's finished
    model call is not repeated: the answer is saved in the Store as soon as the model returns
    (``stellar_graph.agents.factory`` ``AGENT_CALLS_NAMESPACE``). ``sync`` also checkpoints every
    step (the agent's too), for time travel through task runs in Studio, at about twice the cost."""
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    """SQLite's ``synchronous`` pragma for the checkpoint and Store files (WAL mode). ``normal``
    survives a killed process (kill -9) without losing a commit; only a power loss or an OS crash
    can lose the last commits (never corrupting the file). ``full`` syncs every commit to disk
    (about 2x the cost per checkpoint, ``langgraph-runtime-facts.md``)."""
    control_history_runs: int = Field(default=10, ge=0, le=1_000_000)
    """Every this many control runs, the orchestra thread's checkpoint history is pruned to its
    latest checkpoint, so the data directory grows with the task threads only (about 30 KiB per
    task), not with every decision. ``0`` keeps every control checkpoint (time travel in Studio)."""

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str) -> str:
        path = Path(v).expanduser()
        if not v.strip():
            raise ValueError("data_dir is empty; name a directory (it is created if missing)")
        if path.exists() and not path.is_dir():
            raise ValueError(f"{v!r} exists and is not a directory; name a directory (it is created if missing)")
        return v


class LLMConfig(_Section):
    """The chat model. ``model=None`` means simulated agents (no LLM, no network)."""

    model: str | None = None
    base_url: str | None = None
    temperature: float = Field(default=0.2, ge=0, le=2)
    timeout_seconds: float = Field(default=60, gt=0)
    max_retries: int = Field(default=0, ge=0, le=10)
    simulated_seconds: float = Field(default=0, ge=0, le=3600)
    """Without a model, each simulated agent answer takes this long (wall time): a stand-in for a
    model's latency in demos and benchmarks (``tools/bench_server.py``)."""


class AgentTypeConfig(_Section):
    """One agent type declared in a config or scenario file (``agent_types:``), beside the
    reference team. Paths are relative to the declaring file (``base_dir``)."""

    name: str
    """Node name and short key (``cartographer``): a letter, then letters, digits or ``_``."""
    agent_type: str | None = None
    """The type name instances are registered with; default ``<Name>Agent``."""
    display_name: str | None = None
    description: str = ""
    prompt: str | None = None
    """A prompt file (``prompts/cartographer.md``), or the prompt's text; default a generic one."""
    capabilities: list[str] = Field(default_factory=list)
    specializations: list[str] = Field(default_factory=list)
    model: str | None = None
    """This type's chat model (``gpt-4o-mini``), built like ``llm.model``; default ``llm.model``."""
    tools: list[str] = Field(default_factory=list)
    """LangChain tools the agent may call, each ``module:attribute`` (or ``file.py:attribute``)."""
    graph: str | None = None
    """Bring your own agent: ``module:attribute`` or ``path/to/file.py:attribute`` naming a
    compiled graph, a Runnable, a ``RemoteGraph`` or a callable that satisfies the agent
    contract (``stellar_graph.agents``). ``prompt`` and ``model`` then do not apply."""
    base_dir: str | None = None
    """Where relative paths are read from: set to the declaring file's folder when loaded from a
    file; the working directory otherwise."""


class OrchestraConfig(_Section):
    """The orchestra's whole configuration tree (the seed's, plus persistence and llm)."""

    task_allocation: TaskAllocationConfig = Field(default_factory=TaskAllocationConfig)
    collaboration: CollaborationConfig = Field(default_factory=CollaborationConfig)
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    messaging: MessagingConfig = Field(default_factory=MessagingConfig)
    orchestration_mode: Literal["static", "dynamic", "adaptive"] = "adaptive"
    emergency_protocols: EmergencyProtocolsConfig = Field(default_factory=EmergencyProtocolsConfig)
    learning_parameters: LearningParametersConfig = Field(default_factory=LearningParametersConfig)
    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent_types: list[AgentTypeConfig] = Field(default_factory=list)
    """Agent types besides the reference team (not in the seed; see "Your own agents")."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, **overrides: Any) -> OrchestraConfig:
        """Build a config from a (partial) dict; missing keys come from the environment, then the
        defaults (the dict's keys win: arguments > environment)."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigurationError(
                f"An orchestra config must be a mapping of sections, got {type(data).__name__} {data!r:.80}. "
                "Fix: pass a dict such as {'task_allocation': {'strategy': 'optimal'}}, or a YAML/TOML path "
                "to `OrchestraConfig.load`.",
                value=data,
            )
        return cls._validated(_deep_merge(environment_layer(), {**dict(data or {}), **overrides}))

    @classmethod
    def _validated(cls, merged: Mapping[str, Any]) -> OrchestraConfig:
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OrchestraConfig:
        """Load a ``.yaml``/``.yml`` or ``.toml`` file.

        A scenario file (``stellar-graph run`` input) is accepted too: its ``config`` section and
        its ``agent_types``, so one file can drive the CLI, ``serve`` and ``langgraph dev``.
        """
        p = Path(path)
        if not p.is_file():
            raise ConfigurationError(f"Config file {str(p)!r} does not exist.", value=str(p))
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix in {".yaml", ".yml"}:
                data = yaml.safe_load(text) or {}
            elif p.suffix == ".toml":
                data = tomllib.loads(text)
            else:
                raise ConfigurationError(
                    f"Config file {str(p)!r} has suffix {p.suffix!r}; use .yaml, .yml or .toml.",
                    value=p.suffix,
                )
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"Config file {str(p)!r} is not valid: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"Config file {str(p)!r} must hold a mapping at the top, got {type(data).__name__}."
            )
        if SCENARIO_KEYS & set(data):
            section = data.get("config") or {}
            if not isinstance(section, dict):
                raise ConfigurationError(
                    f"Scenario file {str(p)!r}: `config` must be a mapping of sections, got {type(section).__name__}.",
                    field="config", value=section,
                )
            data = {**section, **({"agent_types": data["agent_types"]} if "agent_types" in data else {})}
        # environment > file: the environment's keys are merged over the file's
        return cls._validated(_deep_merge(with_base_dir(data, p.resolve().parent), environment_layer()))

    @classmethod
    def load(cls, source: OrchestraConfig | Mapping[str, Any] | str | os.PathLike[str] | None) -> OrchestraConfig:
        """Accept any supported source: a config, a dict, a file path or ``None`` (defaults)."""
        if source is None:
            return cls.from_dict({})
        if isinstance(source, OrchestraConfig):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        return cls.from_file(source)

    def merged(self, patch: Mapping[str, Any]) -> OrchestraConfig:
        """Return a copy with ``patch`` deep-merged in (validated like ``from_dict``)."""
        # exclude_unset keeps "was this set explicitly?" intact, which precedence rules rely on.
        return OrchestraConfig.from_dict(_deep_merge(self.model_dump(exclude_unset=True), patch))


SCENARIO_KEYS = frozenset({"name", "description", "agents", "tasks", "collaborations", "config"})
"""Top-level keys that make a YAML file a scenario rather than a config."""


def with_base_dir(data: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``data`` with ``base`` as the ``base_dir`` of each declared agent type that names none."""
    types = data.get("agent_types")
    if not isinstance(types, list):
        return dict(data)
    declared = [{"base_dir": str(base), **t} if isinstance(t, dict) else t for t in types]
    return {**data, "agent_types": declared}


class _EnvironmentBase(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_file=".env", env_file_encoding="utf-8",
        extra="ignore", case_sensitive=False, frozen=True,
    )


@functools.cache
def _environment_model() -> type[BaseSettings]:
    """A settings model with every section of :class:`OrchestraConfig`, each optional."""
    fields: dict[str, Any] = {
        name: (Optional[field.annotation], None)  # noqa: UP045  # a runtime type expression
        for name, field in OrchestraConfig.model_fields.items()
    }
    return create_model("OrchestraEnvironment", __base__=_EnvironmentBase, **fields)


def environment_layer() -> dict[str, Any]:
    """The config keys the environment sets, as a nested dict (see the module doc).

    Raises:
        ConfigurationError: a variable names an unknown key or holds a bad value; the message
            names the variable.
    """
    layer: dict[str, Any] = {}
    for variable, (section, key) in ENV_SHORTHANDS.items():
        if os.environ.get(variable):
            layer.setdefault(section, {})[key] = os.environ[variable]
    secrets = os.environ.get(SECRETS_DIR_ENV)
    options: dict[str, Any] = {"_secrets_dir": secrets} if secrets and Path(secrets).is_dir() else {}
    try:
        found = _environment_model()(**options).model_dump(exclude_unset=True)
    except ValidationError as exc:
        error = _config_error(exc)
        variable = ENV_PREFIX + "__".join(str(error.field or "").split(".")).upper()
        raise ConfigurationError(
            f"From the environment ({variable}, or .env): {error}", field=error.field, value=error.value
        ) from None
    return _deep_merge(layer, found)


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = OrchestraConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _config_error(exc: ValidationError) -> ConfigurationError:
    problems = []
    first_path, first_value = None, None
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(err["loc"]))
            problems.append(f"unknown key `{path}`; allowed keys here: {allowed}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"`{path}` = {value!r}: {msg}")
        if first_path is None:
            first_path, first_value = path, value
    return ConfigurationError(
        "Invalid orchestra config: " + "; ".join(problems) + ". Fix the key(s) named above.",
        field=first_path,
        value=first_value,
    )
