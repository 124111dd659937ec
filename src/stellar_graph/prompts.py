"""Prompt templates: one file per agent or role, shipped inside the wheel.

A template's first line lists its placeholders (``<!-- variables: a, b -->``); the body uses
``${name}``. Rendering with a missing or an unused variable is a :class:`ConfigurationError`, so a
typo in a prompt or in the code that fills it fails loudly instead of sending a broken prompt.

Example:
    >>> load_prompt("task").variables
    ('task_id', 'description', 'priority', 'deadline', 'success_criteria', 'context')
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from stellar_graph.errors import ConfigurationError

__all__ = ["AGENT_VARIABLES", "PromptTemplate", "available_prompts", "load_prompt", "parse_prompt", "prompts_dir"]

AGENT_VARIABLES = ("agent_id", "agent_name", "capabilities", "specializations")
"""What an agent's system prompt may use: the orchestra fills them for each instance."""

_HEADER = re.compile(r"^<!--\s*variables:\s*(?P<names>[^>]*?)\s*-->\s*\n", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed prompt file."""

    name: str
    variables: tuple[str, ...]
    body: str

    def render(self, **values: object) -> str:
        """Fill every placeholder.

        Raises:
            ConfigurationError: a variable is missing or one was given that the prompt does not use.
        """
        missing = [v for v in self.variables if v not in values]
        unused = [v for v in values if v not in self.variables]
        if missing or unused:
            raise ConfigurationError(
                f"Prompt {self.name!r} takes variables {list(self.variables)}; "
                f"missing {missing}, unexpected {unused}. Fix the call or the prompt's header.",
                field=self.name,
                value=sorted(values),
            )
        return string.Template(self.body).substitute({k: str(v) for k, v in values.items()})


def prompts_dir() -> Path:
    """Where the prompt files are: inside the installed package, or ``prompts/`` in a checkout."""
    packaged = resources.files("stellar_graph") / "prompts"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "prompts"


def available_prompts() -> list[str]:
    """Names of every prompt file (without ``.md``)."""
    return sorted(p.stem for p in prompts_dir().glob("*.md"))


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Load and check ``prompts/<name>.md``.

    Raises:
        ConfigurationError: the file is missing, has no variables header, or its body uses a
            placeholder the header does not declare (or declares one it never uses).
    """
    path = prompts_dir() / f"{name}.md"
    if not path.is_file():
        raise ConfigurationError(
            f"No prompt file {path.name!r} in {str(path.parent)!r}; available: {available_prompts()}.",
            field="prompt",
            value=name,
        )
    return parse_prompt(name, path.read_text(encoding="utf-8"))


def parse_prompt(name: str, text: str, *, allowed: Sequence[str] | None = None) -> PromptTemplate:
    """Parse a prompt's text (``name`` appears in errors).

    With ``allowed`` (users' agent prompts) the ``<!-- variables: ... -->`` header is optional:
    the variables are those the body uses, each of which must be allowed.

    Raises:
        ConfigurationError: no header where one is required, a header and body that disagree, or
            a placeholder outside ``allowed``.
    """
    match = _HEADER.match(text)
    body = (text[match.end() :] if match else text).strip() + "\n"
    used = {m[1] or m[2] for m in string.Template.pattern.findall(body) if m[1] or m[2]}
    if match is None and allowed is None:
        raise ConfigurationError(
            f"Prompt {name!r} must start with `<!-- variables: ... -->`.", field="prompt", value=name
        )
    declared = tuple(v.strip() for v in match["names"].split(",") if v.strip()) if match else tuple(sorted(used))
    if used != set(declared):
        raise ConfigurationError(
            f"Prompt {name!r} declares {sorted(declared)} but uses {sorted(used)}; make them agree.",
            field="prompt",
            value=name,
        )
    unknown = sorted(used - set(allowed)) if allowed is not None else []
    if unknown and allowed is not None:
        raise ConfigurationError(
            f"Prompt {name!r} uses {unknown}, which the orchestra does not fill. Fix: use only "
            f"{['${' + v + '}' for v in allowed]} (write $$ for a literal $).",
            field="prompt",
            value=unknown,
        )
    return PromptTemplate(name=name, variables=declared, body=body)
