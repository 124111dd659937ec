"""Agent types: a spec per type, and the reference Vegapunk team.

An agent *type* (Atlas) becomes one subgraph node of the orchestra; agent *instances*
(``atlas-001``, ``atlas-002``) are registry entries of that type with their own capacity and load.
The reference team is four specs plus four prompt files, not four copies of code.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stellar_graph.errors import ConfigurationError, UnknownAgentError
from stellar_graph.prompts import AGENT_VARIABLES, available_prompts, load_prompt, parse_prompt

if TYPE_CHECKING:
    from stellar_graph.config import AgentTypeConfig

__all__ = [
    "ATLAS",
    "EDISON",
    "LILITH",
    "PYTHAGORAS",
    "REFERENCE_TEAM",
    "AgentSpec",
    "AgentTypeRegistry",
    "agent_specs",
    "load_object",
    "spec_from_config",
]


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_NAMES = frozenset({
    "begin", "finish", "start", "end", "intake", "monitor", "allocator", "dispatch", "optimizer", "escalation",
    "collaboration", "collaboration_dispatch", "collaboration_join", "collaboration_work", "conflict_resolution",
    "consensus", "negotiation", "orchestra", "task", "agents",
})  # fmt: skip
"""Node names of the control and task graphs (an agent type is a node of the task graph), and the
names of the graphs ``stellar_graph.studio`` serves beside the agent types."""


_FILE_SUFFIXES = (".md", ".txt")


def _template(spec: AgentSpec) -> Any:
    """Parse the spec's prompt once, when the type is declared: a bad prompt fails there."""
    prompt = spec.prompt
    if prompt is None:
        return load_prompt("agent")
    if hasattr(prompt, "format_messages"):  # a ChatPromptTemplate (or any BaseChatPromptTemplate)
        unknown = sorted(set(prompt.input_variables) - {*AGENT_VARIABLES, "task"})
        if unknown:
            raise ConfigurationError(
                f"Agent type {spec.name!r}: its ChatPromptTemplate uses {unknown}, which the orchestra "
                f"does not fill. Fix: use only {[*AGENT_VARIABLES, 'task']}.",
                field="prompt", value=unknown,
            )
        return prompt
    if isinstance(prompt, os.PathLike) or (isinstance(prompt, str) and prompt.endswith(_FILE_SUFFIXES)):
        path = Path(prompt).expanduser()
        if not path.is_absolute():
            path = Path(spec.base_dir or Path.cwd()) / path
        if not path.is_file():
            raise ConfigurationError(
                f"Agent type {spec.name!r}: no prompt file {str(path)!r}. Fix: give a path relative to "
                f"{str(Path(spec.base_dir or Path.cwd()))!r} (the declaring file's folder), or an absolute one.",
                field="prompt", value=str(prompt),
            )
        return parse_prompt(str(path), path.read_text(encoding="utf-8"), allowed=AGENT_VARIABLES)
    if isinstance(prompt, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prompt):
        if prompt not in available_prompts():
            raise ConfigurationError(
                f"Agent type {spec.name!r}: {prompt!r} is not a bundled prompt {available_prompts()}. "
                f"Fix: pass a file path (for example 'prompts/{prompt}.md') or the prompt's text.",
                field="prompt", value=prompt,
            )
        return load_prompt(prompt)
    if isinstance(prompt, str) and prompt.strip():
        return parse_prompt(f"{spec.name} prompt", prompt, allowed=AGENT_VARIABLES)
    raise ConfigurationError(
        f"Agent type {spec.name!r}: prompt {prompt!r:.80} is not a prompt. Fix: pass a file path, the "
        "prompt's text, a bundled prompt's name or a ChatPromptTemplate.",
        field="prompt", value=repr(prompt)[:80],
    )


@dataclass(frozen=True)
class AgentSpec:
    """One agent type.

    Attributes:
        name: node name in the orchestra graph and short type key (``"atlas"``).
        agent_type: the type name users register instances with; default ``<Name>Agent``.
        display_name: how the agent introduces itself; default ``<Name>``.
        prompt: the system prompt: a bundled prompt's name (``"atlas"``), a file path (a ``Path``
            or a string ending in ``.md``/``.txt``, relative to ``base_dir``), the prompt's text,
            or a ``ChatPromptTemplate``. Placeholders: ``agent_id``, ``agent_name``,
            ``capabilities``, ``specializations`` (and ``task`` in a ``ChatPromptTemplate``).
            Default: the bundled generic ``agent`` prompt.
        capabilities: default capabilities of a new instance.
        specializations: default specializations of a new instance.
        description: one line for docs, Studio and the CLI.
        tools: LangChain tools the agent may call while acting.
        model: this type's chat model (a ``BaseChatModel``, or a model name built from the
            orchestra's ``llm`` config); default the orchestra's model.
        graph: bring your own agent: a compiled graph, a Runnable, a ``RemoteGraph`` or a plain
            (async) function that satisfies the agent contract (``stellar_graph.agents``);
            ``prompt``, ``model`` and ``tools`` then do not apply.
        base_dir: where a relative prompt path is read from (default: the working directory).
    """

    name: str
    agent_type: str = ""
    display_name: str = ""
    prompt: Any = None
    capabilities: tuple[str, ...] = ()
    specializations: tuple[str, ...] = ()
    description: str = ""
    tools: tuple[Any, ...] = field(default=())
    model: Any = None
    graph: Any = None
    base_dir: str | os.PathLike[str] | None = None
    template: Any = field(default=None, init=False, repr=False, compare=False)
    """The parsed prompt (:class:`~stellar_graph.prompts.PromptTemplate` or ``ChatPromptTemplate``)."""

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
        title = self.name[:1].upper() + self.name[1:]
        object.__setattr__(self, "agent_type", self.agent_type or f"{title}Agent")
        object.__setattr__(self, "display_name", self.display_name or title)
        object.__setattr__(self, "capabilities", tuple(self.capabilities))
        object.__setattr__(self, "specializations", tuple(self.specializations))
        object.__setattr__(self, "tools", tuple(self.tools))
        if self.graph is None:
            object.__setattr__(self, "template", _template(self))

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


def load_object(ref: str, base_dir: str | os.PathLike[str] | None = None) -> Any:
    """Import ``module:attribute`` or ``path/to/file.py:attribute`` (relative to ``base_dir``).

    ``base_dir`` is put on ``sys.path`` so a project's own modules import as they do in it.

    Raises:
        ConfigurationError: the reference is malformed, or the module or attribute is missing.
    """
    module_ref, _, attribute = ref.rpartition(":")
    if not module_ref or not attribute.isidentifier():
        raise ConfigurationError(
            f"Graph reference {ref!r} must be 'module:attribute' or 'path/to/file.py:attribute'.",
            field="graph", value=ref,
        )
    base = str(Path(base_dir or Path.cwd()).resolve())
    if base not in sys.path:
        sys.path.insert(0, base)
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref) if Path(module_ref).is_absolute() else Path(base) / module_ref
            name = f"stellar_graph_user_{abs(hash(str(path.resolve())))}"
            module = sys.modules.get(name)
            if module is None:
                loader = importlib.util.spec_from_file_location(name, path)
                if loader is None or loader.loader is None or not path.is_file():
                    raise FileNotFoundError(str(path))
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
    except (ImportError, FileNotFoundError) as exc:
        raise ConfigurationError(
            f"Graph reference {ref!r}: cannot import {module_ref!r} from {base!r} ({exc}). Fix: name a "
            "module importable from the declaring file's folder, or a .py file relative to it.",
            field="graph", value=ref,
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(
            f"Graph reference {ref!r}: module {module_ref!r} has no attribute {attribute!r}.",
            field="graph", value=ref,
        ) from None


def spec_from_config(declared: AgentTypeConfig) -> AgentSpec:
    """The :class:`AgentSpec` of an agent type declared in a config or scenario file."""
    return AgentSpec(
        name=declared.name,
        agent_type=declared.agent_type or "",
        display_name=declared.display_name or "",
        prompt=declared.prompt,
        capabilities=tuple(declared.capabilities),
        specializations=tuple(declared.specializations),
        description=declared.description,
        model=declared.model,
        tools=tuple(load_object(ref, declared.base_dir) for ref in declared.tools),
        graph=load_object(declared.graph, declared.base_dir) if declared.graph else None,
        base_dir=declared.base_dir,
    )


def agent_specs(declared: Sequence[AgentTypeConfig], agents: Sequence[AgentSpec] | None = None) -> tuple[AgentSpec, ...]:
    """Every agent type of an orchestra: ``agents`` (default the reference team) plus the types
    its config declares (``agent_types``)."""
    return (*(REFERENCE_TEAM if agents is None else agents), *(spec_from_config(d) for d in declared))


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
            raise UnknownAgentError(
                agent_type, self.type_names(), kind="agent type",
                fix="check the spelling, or declare the type: `agent_types:` in the config or scenario file, "
                "`agents=[AgentSpec(...)]`, or `register_agent_type(AgentSpec(...))` on the orchestra",
            )
        return spec

    def aliases(self) -> set[str]:
        """Every accepted spelling, lower-cased."""
        return set(self._by_alias)

    def type_names(self) -> Sequence[str]:
        """The canonical type names (``AtlasAgent``...)."""
        return [s.agent_type for s in self.specs]
