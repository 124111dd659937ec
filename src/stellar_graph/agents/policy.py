"""How an agent's LLM step is retried and timed out: LangGraph's own `RetryPolicy` and `TimeoutPolicy`.

The ``act`` node of every agent subgraph gets a retry policy (retryable errors only: rate limits,
5xx, connection errors, timeouts, unparsable replies) and a per-attempt timeout. Before a retry
after an HTTP 429/503 that carries ``Retry-After``, the node waits what the provider asked (capped)
on top of the policy's backoff.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from langgraph.errors import NodeTimeoutError
from langgraph.types import RetryPolicy, TimeoutPolicy

from stellar_graph.config import EmergencyProtocolsConfig
from stellar_graph.errors import ModelBehaviorError

__all__ = ["AgentPolicy", "is_retryable", "retry_after_seconds"]

_RETRY_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class AgentPolicy:
    """Retry and timeout settings of the agents' LLM step."""

    max_attempts: int = 3
    """Attempts of one agent at one task (1 = no retry)."""
    initial_interval: float = 0.5
    timeout_seconds: float = 120.0
    max_retry_after: float = 30.0
    simulated_seconds: float = 0.0
    """Wall time of a simulated answer (no model): ``llm.simulated_seconds``."""

    @classmethod
    def from_config(cls, config: EmergencyProtocolsConfig, *, simulated_seconds: float = 0.0) -> AgentPolicy:
        """Retry only if ``retry`` is among the recovery strategies."""
        return cls(
            simulated_seconds=simulated_seconds,
            max_attempts=config.retry_max_attempts if "retry" in config.recovery_strategies else 1,
            initial_interval=config.retry_initial_interval_seconds,
            timeout_seconds=config.agent_timeout_seconds,
            max_retry_after=config.max_retry_after_seconds,
        )

    def retry_policy(self) -> RetryPolicy:
        """LangGraph's retry policy for the act node (no jitter: retries are reproducible)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_interval=self.initial_interval,
            backoff_factor=2.0,
            max_interval=self.max_retry_after,
            jitter=False,
            retry_on=is_retryable,
        )

    def timeout_policy(self) -> TimeoutPolicy:
        """A hard limit per attempt; a timed-out attempt raises `NodeTimeoutError` (retryable)."""
        return TimeoutPolicy(run_timeout=self.timeout_seconds)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: Exception) -> bool:
    """Transient failures worth another attempt by the same agent."""
    if isinstance(exc, NodeTimeoutError | ModelBehaviorError | asyncio.TimeoutError | ConnectionError | httpx.TransportError):
        return True
    status = _status(exc)
    if status is not None:
        return status in _RETRY_STATUS or status >= 500
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai always brings it
        return False
    return isinstance(exc, openai.APIConnectionError | openai.APITimeoutError)


def retry_after_seconds(exc: BaseException) -> float | None:
    """The provider's ``Retry-After`` (seconds) on a 429/503 response, if it sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None or _status(exc) not in {429, 503}:
        return None
    value = headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: the policy's own backoff applies
