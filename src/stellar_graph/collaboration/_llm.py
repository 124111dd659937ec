"""One structured LLM call with a timeout, classified so the caller can fall back deterministically.

Every collaboration step that asks the model (plan, vote, mediate, bid note) goes through
:func:`call_structured` or :func:`call_text`. Only the failures a provider or a model can cause are
caught (provider errors, timeouts, replies that do not parse or do not fit the schema); anything
else, including LangGraph's control-flow exceptions, propagates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
from langchain_core.exceptions import ModelError, ModelTimeoutError, OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage
from pydantic import BaseModel, ValidationError

from stellar_graph.errors import ModelBehaviorError

__all__ = ["FALLBACKS", "Fallback", "LLMOutcome", "call_structured", "call_text"]

logger = logging.getLogger(__name__)

Fallback = Literal[
    "simulated", "timeout", "invalid_json", "wrong_schema", "invalid_content", "provider_error"
]
FALLBACKS: tuple[str, ...] = (
    "simulated",
    "timeout",
    "invalid_json",
    "wrong_schema",
    "invalid_content",
    "provider_error",
)
# Failures a model call can legitimately produce. Everything else is a bug and propagates.
_PROVIDER_ERRORS = (ModelError, httpx.HTTPError, ConnectionError, ModelBehaviorError)
_GARBAGE_ERRORS = (ValidationError, OutputParserException, ValueError)

T = TypeVar("T", bound=BaseModel)


@dataclass
class LLMOutcome(Generic[T]):
    """What one model call produced.

    Attributes:
        parsed: the validated answer, or None when the caller must fall back.
        fallback: why the caller falls back (None when ``parsed`` is usable).
        error: a short description of the failure, for the record.
        usage: ``{"input_tokens", "output_tokens"}`` reported by the provider.
        seconds: wall time of the call.
        text: the reply text (plain calls only).
    """

    parsed: T | None
    fallback: Fallback | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    seconds: float = 0.0
    text: str = ""

    def failed(self, fallback: Fallback, error: str) -> LLMOutcome[T]:
        """The same call marked unusable (e.g. the answer parsed but its content is invalid)."""
        return LLMOutcome(None, fallback, error[:300], self.usage, self.seconds, self.text)

    def record(self) -> dict[str, Any]:
        """The JSON fields every LLM-backed record carries."""
        return {
            "source": "llm" if self.fallback is None else "deterministic",
            "fallback": self.fallback,
            "error": self.error,
        }


async def call_structured(
    model: BaseChatModel, schema: type[T], messages: Sequence[AnyMessage], *, time_limit: float
) -> LLMOutcome[T]:
    """Ask ``model`` for a ``schema`` answer within ``time_limit`` seconds.

    Args:
        model: the chat model.
        schema: the pydantic schema of the answer.
        messages: the prompt.
        time_limit: seconds before the call is abandoned (``fallback="timeout"``).

    Returns:
        The outcome; ``parsed`` is None and ``fallback`` says why when the answer is unusable.
    """
    structured = model.with_structured_output(schema, include_raw=True)
    started = time.perf_counter()
    try:
        out: dict[str, Any] = dict(
            await asyncio.wait_for(structured.ainvoke(list(messages)), time_limit)
        )
    except (TimeoutError, ModelTimeoutError) as exc:
        return _outcome(
            None, "timeout", f"no answer within {time_limit:g} s ({type(exc).__name__})", started
        )
    except _PROVIDER_ERRORS as exc:
        return _outcome(None, "provider_error", f"{type(exc).__name__}: {exc}", started)
    except _GARBAGE_ERRORS as exc:
        # Some providers (OpenAI's json_schema mode) parse inside the client and raise.
        return _outcome(None, _garbage_kind(exc, None), f"{type(exc).__name__}: {exc}", started)
    raw = out.get("raw")
    usage = _usage(raw)
    parsed = out.get("parsed")
    if out.get("parsing_error") is not None or not isinstance(parsed, schema):
        error = out.get("parsing_error") or f"reply is not a {schema.__name__}"
        return _outcome(
            None, _garbage_kind(error, raw), f"{type(error).__name__}: {error}", started, usage
        )
    return _outcome(parsed, None, None, started, usage)


async def call_text(
    model: BaseChatModel, messages: Sequence[AnyMessage], *, time_limit: float
) -> LLMOutcome[Any]:
    """Ask ``model`` for plain text within ``time_limit`` seconds (same failure classes)."""
    started = time.perf_counter()
    try:
        reply = await asyncio.wait_for(model.ainvoke(list(messages)), time_limit)
    except (TimeoutError, ModelTimeoutError) as exc:
        return _outcome(
            None, "timeout", f"no answer within {time_limit:g} s ({type(exc).__name__})", started
        )
    except _PROVIDER_ERRORS as exc:
        return _outcome(None, "provider_error", f"{type(exc).__name__}: {exc}", started)
    outcome: LLMOutcome[Any] = _outcome(None, None, None, started, _usage(reply))
    outcome.text = str(getattr(reply, "text", "") or "").strip()
    return outcome


def _outcome(
    parsed: T | None,
    fallback: Fallback | None,
    error: str | None,
    started: float,
    usage: dict[str, int] | None = None,
) -> LLMOutcome[T]:
    if fallback is not None:
        logger.warning("collaboration LLM step falls back (%s)", fallback)
    return LLMOutcome(
        parsed,
        fallback,
        None if error is None else error[:300],
        usage or {"input_tokens": 0, "output_tokens": 0},
        round(time.perf_counter() - started, 4),
    )


def _garbage_kind(error: object, raw: object) -> Fallback:
    """``invalid_json`` when the reply is not JSON at all, else ``wrong_schema``."""
    if isinstance(error, ValidationError):
        return (
            "invalid_json"
            if any(e["type"] == "json_invalid" for e in error.errors())
            else "wrong_schema"
        )
    if isinstance(raw, AIMessage):
        if raw.tool_calls:
            return "wrong_schema"  # tool arguments always arrive parsed as JSON
        try:
            json.loads(str(raw.content))
        except ValueError:
            return "invalid_json"
        return "wrong_schema"
    return "invalid_json"


def _usage(message: object) -> dict[str, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "input_tokens": int(meta.get("input_tokens", 0)),
        "output_tokens": int(meta.get("output_tokens", 0)),
    }
