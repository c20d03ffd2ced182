"""Per-key rate limits: requests and tokens per window (a minute in production). `acquire` counts a
request and reserves its estimated prompt tokens; `add_tokens` charges the real usage once known.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

LimitKind = Literal["requests", "tokens"]


@dataclass(frozen=True)
class Limits:
    """A key's budget per window; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None


@dataclass(frozen=True)
class Decision:
    """Whether a request may run; if not, which limit refused it and when to retry."""

    allowed: bool
    retry_after: float = 0.0
    limit: LimitKind | None = None

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter(Protocol):
    """Sliding-window request and token limits per key name."""

    async def acquire(self, key: str, limits: Limits, tokens: int = 0) -> Decision:
        """Count one request reserving `tokens`; refuse it if a limit would be exceeded.

        A refused request is not counted. Token limits are checked only for requests that
        spend tokens, and a request larger than the whole token budget runs when nothing else
        has been spent in the window (so it is slow to come back, never impossible).
        """

    async def add_tokens(self, key: str, tokens: int) -> None:
        """Charge tokens learned after the request; they may push the key over its budget."""

    async def close(self) -> None:
        """Release connections."""


@dataclass
class _Window:
    """One key's recent requests (timestamps) and token spends (timestamp, tokens)."""

    requests: deque[float] = field(default_factory=deque)
    spends: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0

    def expire(self, cutoff: float) -> None:
        while self.requests and self.requests[0] <= cutoff:
            self.requests.popleft()
        while self.spends and self.spends[0][0] <= cutoff:
            self.tokens -= self.spends.popleft()[1]


class InProcessRateLimiter:
    """Exact sliding-window log in this process's memory: O(requests in the window) per key.

    No awaits happen between reading and updating a window, so the event loop makes every
    `acquire` atomic without a lock.
    """

    def __init__(self, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def _current(self, key: str, now: float) -> _Window:
        win = self._windows.setdefault(key, _Window())
        win.expire(now - self.window)
        return win

    async def acquire(self, key: str, limits: Limits, tokens: int = 0) -> Decision:
        if limits.unlimited:
            return Decision(True)
        now = self._clock()
        win = self._current(key, now)
        if limits.rpm is not None and len(win.requests) >= limits.rpm:
            wait = _wait_for(((t, 1) for t in win.requests), len(win.requests), 1, limits.rpm)
            return Decision(False, wait + self.window - now, "requests")
        cost = min(tokens, limits.tpm) if limits.tpm is not None else tokens
        if limits.tpm is not None and cost > 0 and win.tokens + cost > limits.tpm:
            wait = _wait_for(win.spends, win.tokens, cost, limits.tpm)
            return Decision(False, wait + self.window - now, "tokens")
        win.requests.append(now)
        if tokens > 0:
            win.spends.append((now, tokens))
            win.tokens += tokens
        return Decision(True)

    async def add_tokens(self, key: str, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self._clock()
        win = self._current(key, now)
        win.spends.append((now, tokens))
        win.tokens += tokens

    async def close(self) -> None:
        self._windows.clear()


def _wait_for(entries: Iterable[tuple[float, int]], used: int, cost: int, limit: int) -> float:
    """Timestamp of the entry whose expiry frees enough budget for `cost`."""
    for stamp, amount in entries:
        used -= amount
        if used + cost <= limit:
            return stamp
    raise AssertionError("the budget frees up once every entry has expired")
