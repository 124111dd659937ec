"""Agent types: a spec per type, and the reference Vegapunk team.

An agent *type* (Atlas) becomes one subgraph node of the orchestra; agent *instances*
(``atlas-001``, ``atlas-002``) are registry entries of that type with their own capacity and load.
The reference team is four specs plus four prompt files, not four copies of code.
"""

from __future__ import annotations

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
