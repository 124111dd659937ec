"""Agent types: a spec per type, and the reference Vegapunk team.

An agent *type* (Atlas) becomes one subgraph node of the orchestra; agent *instances*
(``atlas-001``, ``atlas-002``) are registry entries of that type with their own capacity and load.
The reference team is four specs plus four prompt files, not four copies of code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stellar_graph.errors import ConfigurationError, UnknownAgentError

__all__ = [
    "ATLAS",
    "EDISON",
    "LILITH",
    "PYTHAGORAS",
    "REFERENCE_TEAM",
    "AgentSpec",
    "AgentTypeRegistry",
]


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_NAMES = frozenset({
    "begin", "finish", "start", "end", "intake", "monitor", "allocator", "dispatch", "optimizer", "escalation",
    "collaboration", "collaboration_dispatch", "collaboration_join", "collaboration_work", "conflict_resolution",
    "consensus", "negotiation",
})  # fmt: skip
"""Node names of the control and task graphs: an agent type is a node of the task graph."""


@dataclass(frozen=True)
class AgentSpec:
    """One agent type.

    Attributes:
        name: node name in the orchestra graph and short type key (``"atlas"``).
        agent_type: the type name users register instances with (``"AtlasAgent"``).
        display_name: how the agent introduces itself (``"Atlas"``).
        prompt: prompt file name in ``prompts/`` (without ``.md``).
        capabilities: default capabilities of a new instance.
        specializations: default specializations of a new instance.
        description: one line for docs, Studio and the CLI.
        tools: LangChain tools the agent may call while acting.
    """

    name: str
    agent_type: str
    display_name: str
    prompt: str
    capabilities: tuple[str, ...]
    specializations: tuple[str, ...]
    description: str = ""
    tools: tuple[Any, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"Invalid agent type name {self.name!r}: it names a graph node. Fix: use a letter then "
                "letters, digits or '_' (at most 64), for example 'cartographer'.",
                field="name",
                value=self.name,
            )
        if self.name.lower() in RESERVED_NAMES:
            raise ConfigurationError(
                f"Invalid agent type name {self.name!r}: the orchestra's graphs already have a node of "
                f"that name. Fix: pick another name (reserved: {sorted(RESERVED_NAMES)}).",
                field="name",
                value=self.name,
            )

    def aliases(self) -> set[str]:
        """Every spelling accepted for this type in ``AgentProfile.agent_type``."""
        return {self.name, self.agent_type, self.display_name, self.agent_type.removesuffix("Agent")}

    def default_profile(self, agent_id: str, **overrides: Any) -> dict[str, Any]:
        """A registrable profile dict for a new instance of this type."""
        return {
            "agent_id": agent_id,
            "agent_type": self.agent_type,
            "capabilities": list(self.capabilities),
            "specializations": list(self.specializations),
            **overrides,
        }


ATLAS = AgentSpec(
    name="atlas",
    agent_type="AtlasAgent",
    display_name="Atlas",
    prompt="atlas",
    capabilities=("knowledge_synthesis", "research_coordination"),
    specializations=("ethics", "philosophy", "decision_making"),
    description="Knowledge synthesis and research coordination.",
)
EDISON = AgentSpec(
    name="edison",
    agent_type="EdisonAgent",
    display_name="Edison",
    prompt="edison",
    capabilities=("innovation", "invention", "engineering"),
    specializations=("prototyping", "system_design", "hardware"),
    description="Innovation, invention and engineering.",
)
LILITH = AgentSpec(
    name="lilith",
    agent_type="LilithAgent",
    display_name="Lilith",
    prompt="lilith",
    capabilities=("critical_review", "red_teaming"),
    specializations=("risk_analysis", "ethics", "security"),
    description="Critical review, risk and ethics red-teaming.",
)
PYTHAGORAS = AgentSpec(
    name="pythagoras",
    agent_type="PythagorasAgent",
    display_name="Pythagoras",
    prompt="pythagoras",
    capabilities=("mathematics", "data_analysis", "algorithm_design"),
    specializations=("statistics", "optimization", "quantum_physics"),
    description="Mathematics, data analysis and algorithm design.",
)
REFERENCE_TEAM: tuple[AgentSpec, ...] = (ATLAS, EDISON, LILITH, PYTHAGORAS)


class AgentTypeRegistry:
    """Resolves the spellings of agent types to their specs; built once per orchestra."""

    def __init__(self, specs: Iterable[AgentSpec]) -> None:
        self.specs: tuple[AgentSpec, ...] = tuple(specs)
        if not self.specs:
            raise ConfigurationError("An orchestra needs at least one agent type.", field="agents")
        self._by_alias: dict[str, AgentSpec] = {}
        names = [s.name for s in self.specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigurationError(f"Agent type names must be unique; repeated: {dupes}.", field="agents", value=dupes)
        for spec in self.specs:
            for alias in spec.aliases():
                self._by_alias[alias.lower()] = spec

    def resolve(self, agent_type: str) -> AgentSpec:
        """The spec for any accepted spelling (case-insensitive).

        Raises:
            UnknownAgentError: no such type.
        """
        spec = self._by_alias.get(agent_type.lower())
        if spec is None:
            raise UnknownAgentError(agent_type, self.type_names(), kind="agent type")
        return spec

    def type_names(self) -> Sequence[str]:
        """The canonical type names (``AtlasAgent``...)."""
        return [s.agent_type for s in self.specs]
