"""Who can receive bus messages: agent ids, agent types and groups.

A recipient is written as one of:

* ``"all-agents"``: every registered agent;
* ``"agent:<id>"``, ``"type:<AgentType>"``, ``"group:<name>"``: explicit;
* a bare name: an agent id, an agent type or a group name. A bare name that is more than one
  of these is ambiguous and refused; the error shows the prefixed spellings.

Resolution happens when a message is sent, so an unknown recipient fails the send and nothing is
queued; the resolved agent ids travel with the message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any, Final

from stellar_graph.errors import (
    DuplicateAgentError,
    InvalidInputError,
    UnknownAgentError,
    UnknownRecipientError,
)

__all__ = ["ALL_AGENTS", "Registry"]

ALL_AGENTS: Final = "all-agents"
_PREFIXES: Final = ("agent:", "type:", "group:")


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InvalidInputError(
            f"{what} {value!r} must be a non-empty string of at most 256 characters.",
            errors=[{"field": what, "value": value, "message": "must be a non-empty string"}],
        )
    if value == ALL_AGENTS or value.startswith(_PREFIXES):
        raise InvalidInputError(
            f"{what} {value!r} is reserved: 'all-agents' and names starting with "
            f"{', '.join(repr(p) for p in _PREFIXES)} address recipients. Choose another name.",
            errors=[{"field": what, "value": value, "message": "reserved name"}],
        )
    return value


class Registry:
    """Agent ids with their type and groups; resolves recipient names to agent ids."""

    __slots__ = ("agents", "groups", "types")

    def __init__(self) -> None:
        self.agents: dict[str, tuple[str | None, dict[str, None]]] = {}
        # Ordered "sets" (dicts with None values) so resolution order follows registration.
        self.types: dict[str, dict[str, None]] = {}
        self.groups: dict[str, dict[str, None]] = {}

    def register(self, agent_id: str, agent_type: str | None, groups: Iterable[str]) -> None:
        """Add an agent, or merge groups into an existing one of the same type.

        Raises:
            InvalidInputError: a bad or reserved id, type or group name.
            DuplicateAgentError: the id is registered with a different agent type.
        """
        _check_name(agent_id, "agent_id")
        if agent_type is not None:
            _check_name(agent_type, "agent_type")
        names = [_check_name(g, "group") for g in ([groups] if isinstance(groups, str) else groups)]
        known = self.agents.get(agent_id)
        if known is not None:
            if agent_type is not None and known[0] is not None and known[0] != agent_type:
                raise DuplicateAgentError(agent_id)
            if agent_type is not None and known[0] is None:
                self.agents[agent_id] = (agent_type, known[1])
                self.types.setdefault(agent_type, {})[agent_id] = None
        else:
            self.agents[agent_id] = (agent_type, {})
            if agent_type is not None:
                self.types.setdefault(agent_type, {})[agent_id] = None
        for group in names:
            self.add_to_group(agent_id, group)

    def unregister(self, agent_id: str) -> None:
        """Remove an agent from the registry, its type and its groups.

        Raises:
            UnknownAgentError: the id is not registered.
        """
        agent_type, groups = self._agent(agent_id)
        del self.agents[agent_id]
        if agent_type is not None:
            _discard(self.types, agent_type, agent_id)
        for group in groups:
            _discard(self.groups, group, agent_id)

    def add_to_group(self, agent_id: str, group: str) -> None:
        """Put a registered agent in a group (created on first use)."""
        _check_name(group, "group")
        self._agent(agent_id)[1][group] = None
        self.groups.setdefault(group, {})[agent_id] = None

    def remove_from_group(self, agent_id: str, group: str) -> None:
        """Take an agent out of a group; an emptied group disappears."""
        self._agent(agent_id)[1].pop(group, None)
        _discard(self.groups, group, agent_id)

    def resolve(self, tokens: Sequence[str]) -> tuple[str, ...]:
        """Resolve recipient names to agent ids (deduplicated, in order).

        Raises:
            UnknownRecipientError: a name that matches no registered agent.
            InvalidInputError: a bare name that is an id, a type and/or a group at once.
        """
        if len(tokens) == 1:  # fast path: one bare agent id
            token = tokens[0]
            if token in self.agents and token not in self.types and token not in self.groups:
                return tokens if isinstance(tokens, tuple) else (token,)
        out: dict[str, None] = {}
        for token in tokens:
            out.update(dict.fromkeys(self._resolve_one(token)))
        return tuple(out)

    def known(self) -> list[str]:
        """Every recipient name that currently resolves."""
        return [
            ALL_AGENTS,
            *self.agents,
            *(f"type:{t}" for t in self.types),
            *(f"group:{g}" for g in self.groups),
        ]

    def to_list(self) -> list[dict[str, Any]]:
        """The registry as JSON-able records (for snapshots and the durable store)."""
        return [
            {"agent_id": a, "agent_type": t, "groups": list(g)} for a, (t, g) in self.agents.items()
        ]

    def _agent(self, agent_id: str) -> tuple[str | None, dict[str, None]]:
        entry = self.agents.get(agent_id)
        if entry is None:
            raise UnknownAgentError(agent_id, list(self.agents))
        return entry

    def _resolve_one(self, token: str) -> Iterable[str]:
        if token == ALL_AGENTS:
            if not self.agents:
                raise UnknownRecipientError(token, [], detail=" (no agent is registered)")
            return self.agents
        for prefix, table in (
            ("agent:", self.agents),
            ("type:", self.types),
            ("group:", self.groups),
        ):
            if token.startswith(prefix):
                name = token[len(prefix) :]
                if name not in table:
                    raise self._unknown(token)
                return (name,) if prefix == "agent:" else table[name]  # type: ignore[return-value]
        kinds = [
            (kind, table)
            for kind, table in (
                ("agent", self.agents),
                ("type", self.types),
                ("group", self.groups),
            )
            if token in table
        ]
        if not kinds:
            raise self._unknown(token)
        if len(kinds) > 1:
            spelled = " or ".join(f"'{kind}:{token}'" for kind, _ in kinds)
            raise InvalidInputError(
                f"Recipient {token!r} is ambiguous: it names an {' and a '.join(k for k, _ in kinds)}."
                f" Fix: write {spelled}.",
                errors=[{"field": "recipients", "value": token, "message": "ambiguous"}],
            )
        kind, table = kinds[0]
        return (token,) if kind == "agent" else table[token]  # type: ignore[return-value]

    def _unknown(self, token: str) -> UnknownRecipientError:
        bare = token.partition(":")[2] if token.startswith(_PREFIXES) else token
        spelled = {a: a for a in self.agents}
        spelled.update({t: f"type:{t}" for t in self.types})
        spelled.update({g: f"group:{g}" for g in self.groups})
        close = difflib.get_close_matches(bare, list(spelled), n=3, cutoff=0.75)
        detail = f" (did you mean {', '.join(repr(spelled[c]) for c in close)}?)" if close else ""
        return UnknownRecipientError(token, self.known(), detail=detail)


def _discard(table: dict[str, dict[str, None]], key: str, agent_id: str) -> None:
    members = table.get(key)
    if members is not None:
        members.pop(agent_id, None)
        if not members:
            del table[key]
