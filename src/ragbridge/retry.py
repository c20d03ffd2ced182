"""One retry policy (on tenacity) for every remote HTTP call: the upstream LLM, remote embeddings,
rerank. What is retried and how `Retry-After` is honoured: docs/configuration.md (Retries).

    sent = await send(client, client.build_request("GET", url), RetryPolicy(), resend=True)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
"""The request never left: always safe to send again."""

RetryHook = Callable[[str, float], None]
"""Called before each wait with the cause (`connect`, `timeout`, `transport`, or the status)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; `sleep` is injectable so tests can see the waits."""

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_cap: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(
        default=asyncio.sleep, repr=False, compare=False
    )


class Sent(NamedTuple):
    """The final answer: on success its body unread (the caller streams or reads it), otherwise
    read and closed; `attempts` counts the requests made."""

    response: httpx.Response
    attempts: int


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if parseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_message(response: httpx.Response) -> str:
    """A failed answer's own message, from OpenAI's envelope or the first bytes of the body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, body.get("detail"), body.get("message")):
            if value:
                return str(value)
    return json.dumps(body, ensure_ascii=False)[:300]


def cause(exc: BaseException) -> str:
    """The metric label of a failed attempt."""
    if isinstance(exc, _Again):
        return str(exc.response.status_code)
    if isinstance(exc, NOT_SENT):
        return "connect"
    return "timeout" if isinstance(exc, httpx.TimeoutException) else "transport"


def retryable(exc: BaseException, *, resend: bool) -> bool:
    """Whether a failed attempt may be made again."""
    if isinstance(exc, (_Again, *NOT_SENT)):
        return True
    return resend and isinstance(exc, httpx.TransportError)


class _Again(Exception):
    """A 429 or 5xx answer worth asking again, after `retry_after` seconds when it said so."""

    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.retry_after = retry_after


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    policy: RetryPolicy,
    *,
    resend: bool,
    stream: bool = True,
    retries: int | None = None,
    on_retry: RetryHook | None = None,
) -> Sent:
    """`request` sent until answered or out of retries; raises the last `httpx` error.

    `resend`: the request may be sent again after it may have arrived (no side effects; never a
    chat POST, which may be generating and billing). Returns at the headers: a stream never repeats.
    `stream=False` reads a successful body inside the attempt, so a body cut off is retried too.
    """
    total = 1 + (policy.retries if retries is None else max(0, retries))

    def before_sleep(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        label = cause(failure) if failure is not None else "unknown"
        where = f"{request.method} {request.url.path}"
        log.info("%s: retry %d in %.2fs (%s)", where, state.attempt_number, delay, label)
        if on_retry is not None:
            on_retry(label, delay)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(total),
        wait=_waits(policy),
        retry=retry_if_exception(lambda exc: retryable(exc, resend=resend)),
        before_sleep=before_sleep,
        sleep=policy.sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                response = await client.send(request, stream=stream)
                number = attempt.retry_state.attempt_number
                if response.is_success:
                    return Sent(response, number)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                status = response.status_code
                if status == 429 or status >= 500:
                    asked = retry_after_seconds(response.headers.get("retry-after"))
                    if asked is None or asked <= policy.retry_after_cap:
                        raise _Again(response, asked)
                return Sent(response, number)
    except _Again as again:  # out of retries: the last answer is the caller's to map
        return Sent(again.response, total)
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def _waits(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """`Retry-After` when the server gave one, else equal jitter: half the step, plus up to half
    at random, the step doubling from `base_delay` up to `max_delay`."""
    half, cap = policy.base_delay / 2, policy.max_delay / 2
    fixed, jitter = wait_exponential(half, cap), wait_random_exponential(half, cap)
    backoff = fixed + jitter

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _Again) and failure.retry_after is not None:
            return failure.retry_after
        return float(backoff(state))

    return wait
