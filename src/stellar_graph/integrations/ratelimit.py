"""A token bucket for outbound calls: ``requests_per_minute`` with a burst allowance.

The bucket starts full (``burst`` tokens) and refills at ``requests_per_minute / 60`` tokens a
second. A call takes one token. When the bucket is empty, a caller waits for its token if it
arrives within ``max_wait_seconds``, and is refused at once otherwise (with the time after
which a retry would succeed). Waiting callers reserve their tokens in arrival order, so a burst
of waiters is spread out at exactly the configured rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from stellar_graph.errors import ConfigurationError, OrchestrationError

__all__ = ["RateLimitExceeded", "TokenBucket"]


class RateLimitExceeded(OrchestrationError):
    """The bucket is empty and the next token is further away than the caller may wait.

    Attributes:
        retry_after: seconds until a token will be available.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenBucket:
    """Rate limiter: ``rate_per_minute`` tokens a minute, at most ``burst`` at once.

    Args:
        rate_per_minute: sustained rate (``requests_per_minute``).
        burst: bucket size; defaults to ``rate_per_minute`` (a full minute's worth at once).
        clock: monotonic seconds (tests pass a fake clock).
        sleep: how to wait (tests pass one that advances the fake clock).

    Raises:
        ConfigurationError: a non-positive rate or burst.

    Example:
        >>> bucket = TokenBucket(100)
        >>> bucket.try_acquire()
        True
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate_per_minute > 0:
            raise ConfigurationError(
                f"`rate_limits.requests_per_minute` = {rate_per_minute!r} must be > 0.",
                field="rate_limits.requests_per_minute",
                value=rate_per_minute,
            )
        capacity = max(1, int(rate_per_minute)) if burst is None else burst
        if capacity < 1:
            raise ConfigurationError(
                f"`rate_limits.burst` = {burst!r} must be >= 1.",
                field="rate_limits.burst",
                value=burst,
            )
        self.rate_per_minute = float(rate_per_minute)
        self.capacity = capacity
        self._per_second = self.rate_per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)
        self._last = clock()

    @property
    def available(self) -> float:
        """Tokens available now (negative while waiters hold reservations)."""
        self._refill()
        return self._tokens

    def try_acquire(self) -> bool:
        """Take a token if one is available now, without waiting."""
        return self._reserve(0.0) == 0.0

    async def acquire(self, max_wait_seconds: float = 0.0) -> float:
        """Take a token, waiting up to ``max_wait_seconds`` for it.

        Returns:
            The seconds waited.

        Raises:
            RateLimitExceeded: the token would take longer than ``max_wait_seconds``.
        """
        wait = self._reserve(max_wait_seconds)
        if wait is None:
            retry_after = self._wait_for_next()
            raise RateLimitExceeded(
                f"rate limit of {self.rate_per_minute:g} requests/minute reached; "
                f"retry in {retry_after:.1f}s",
                retry_after=retry_after,
            )
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                self._tokens += 1  # give the reservation back
                raise
        return wait

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(
            float(self.capacity), self._tokens + (now - self._last) * self._per_second
        )
        self._last = now

    def _wait_for_next(self) -> float:
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self._per_second)

    def _reserve(self, max_wait: float) -> float | None:
        """Reserve one token; the wait until it is usable, or None (nothing reserved)."""
        wait = self._wait_for_next()
        if wait > max_wait:
            return None
        self._tokens -= 1.0
        return wait
