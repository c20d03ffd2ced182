"""The in-process sliding-window limiter, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from ragbridge.service.rate_limits import (
    Decision,
    InProcessRateLimiter,
    Limits,
)
from ragbridge.text.tokens import estimate_tokens, prompt_text

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> InProcessRateLimiter:
    return InProcessRateLimiter(window=60.0, clock=clock)


async def test_rpm_refuses_the_extra_request_until_the_oldest_leaves_the_window(
    limiter: InProcessRateLimiter, clock: Clock
) -> None:
    limits = Limits(rpm=3)
    for second in range(3):
        clock.now = 1000.0 + second * 10
        assert (await limiter.acquire("k", limits)).allowed
    clock.now = 1025.0
    refused = await limiter.acquire("k", limits)
    assert refused == Decision(False, 35.0, "requests")  # first request (t=1000) leaves at 1060
    assert refused.retry_after_header == "35"
    clock.now = 1059.9
    assert not (await limiter.acquire("k", limits)).allowed
    clock.now = 1060.0
    assert (await limiter.acquire("k", limits)).allowed
    assert not (await limiter.acquire("k", limits)).allowed  # the window is full again


async def test_refused_requests_are_not_counted(
    limiter: InProcessRateLimiter, clock: Clock
) -> None:
    limits = Limits(rpm=1)
    assert (await limiter.acquire("k", limits)).allowed
    for _ in range(10):
        assert not (await limiter.acquire("k", limits)).allowed
    clock.now += 60
    assert (await limiter.acquire("k", limits)).allowed


async def test_keys_have_separate_budgets(limiter: InProcessRateLimiter) -> None:
    limits = Limits(rpm=1)
    assert (await limiter.acquire("a", limits)).allowed
    assert (await limiter.acquire("b", limits)).allowed
    assert not (await limiter.acquire("a", limits)).allowed


async def test_tpm_counts_reserved_and_later_tokens(
    limiter: InProcessRateLimiter, clock: Clock
) -> None:
    limits = Limits(tpm=100)
    assert (await limiter.acquire("k", limits, tokens=40)).allowed
    clock.now += 5
    await limiter.add_tokens("k", 30)  # completion of the first request
    clock.now += 5
    assert (await limiter.acquire("k", limits, tokens=30)).allowed  # 100: exactly the budget
    clock.now += 5
    refused = await limiter.acquire("k", limits, tokens=1)
    assert not refused.allowed
    assert refused.limit == "tokens"
    # 1 token fits once the first 40 expire (t+60), not sooner
    assert refused.retry_after == pytest.approx(45.0)
    clock.now += 45
    assert (await limiter.acquire("k", limits, tokens=1)).allowed


async def test_requests_without_tokens_pass_an_exhausted_token_budget(
    limiter: InProcessRateLimiter,
) -> None:
    limits = Limits(tpm=10)
    assert (await limiter.acquire("k", limits, tokens=10)).allowed
    assert not (await limiter.acquire("k", limits, tokens=1)).allowed
    assert (await limiter.acquire("k", limits, tokens=0)).allowed  # e.g. GET /v1/models


async def test_a_request_larger_than_the_budget_runs_only_on_an_empty_window(
    limiter: InProcessRateLimiter, clock: Clock
) -> None:
    limits = Limits(tpm=10)
    assert (await limiter.acquire("k", limits, tokens=500)).allowed
    clock.now += 30
    refused = await limiter.acquire("k", limits, tokens=500)
    assert not refused.allowed and refused.retry_after == pytest.approx(30.0)
    clock.now += 30
    assert (await limiter.acquire("k", limits, tokens=500)).allowed


async def test_rpm_and_tpm_together(limiter: InProcessRateLimiter) -> None:
    limits = Limits(rpm=5, tpm=50)
    assert (await limiter.acquire("k", limits, tokens=30)).allowed
    refused = await limiter.acquire("k", limits, tokens=30)
    assert refused.limit == "tokens"
    assert (await limiter.acquire("k", limits, tokens=20)).allowed


async def test_unlimited_keys_are_not_tracked(limiter: InProcessRateLimiter) -> None:
    for _ in range(1000):
        assert (await limiter.acquire("k", Limits(), tokens=10**6)).allowed


def test_retry_after_header_is_whole_seconds_at_least_one() -> None:
    assert Decision(False, 0.01).retry_after_header == "1"
    assert Decision(False, 1.2).retry_after_header == "2"


def test_token_estimate_covers_english_and_korean() -> None:
    assert estimate_tokens("") == 0
    english = "The quick brown fox jumps over the lazy dog."  # 10 tokens in cl100k
    assert 8 <= estimate_tokens(english) <= 14
    korean = "서울은 대한민국의 수도이다."  # Hangul: 3 bytes a syllable
    assert 8 <= estimate_tokens(korean) <= 14


def test_prompt_text_reads_chat_embeddings_and_search_payloads() -> None:
    chat = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]},
        ],
    }
    assert prompt_text(chat) == "Be brief.\nHi"
    assert prompt_text({"input": ["a", "b"]}) == "a\nb"
    assert prompt_text({"query": "q", "collection": "c"}) == "q"
    assert prompt_text({"messages": "not a list of messages", "model": 3}) == ""
    assert prompt_text({"messages": 1.5e16, "input": {"x": 1}}) == ""
