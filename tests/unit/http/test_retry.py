"""The one retry policy (`ragbridge.retry`) on `httpx.MockTransport`: what is retried, how long
it waits (backoff, `Retry-After` in seconds or as a date, its cap) and when it gives up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ragbridge.retry import RetryPolicy, Sent, send
from tests.unit.http.scripted import BreaksAfter, Scripted, error

pytestmark = pytest.mark.anyio

BODY = {"model": "사내-모델", "messages": [{"role": "user", "content": "연차는 며칠인가요?"}]}
URL = "http://llm.test/v1/chat/completions"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def call(
    scripted: Scripted,
    *,
    resend: bool = False,
    stream: bool = True,
    retry: RetryPolicy = RetryPolicy(base_delay=0.2, max_delay=5.0),
) -> tuple[Sent, list[str]]:
    """POST `BODY` through `send`; the answer and the causes of its retries."""
    causes: list[str] = []
    async with scripted.client() as client:
        request = client.build_request("POST", URL, json=BODY)
        sent = await send(
            client,
            request,
            replace(retry, sleep=scripted.sleep),
            resend=resend,
            stream=stream,
            on_retry=lambda cause, _: causes.append(cause),
        )
        await sent.response.aread()
    return sent, causes


async def test_a_503_is_retried_after_its_retry_after_and_the_body_is_sent_again() -> None:
    scripted = Scripted([error(503, "모델을 불러오는 중입니다", **{"Retry-After": "2"})])
    sent, causes = await call(scripted)
    assert sent.response.status_code == 200 and sent.attempts == 2
    assert scripted.sleeps == [2.0]  # the server's wait, not the 0.1-0.2 s backoff
    assert causes == ["503"]
    assert scripted.bodies() == [BODY, BODY]


async def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    scripted = Scripted([error(429, "천천히", **{"Retry-After": when})])
    sent, _ = await call(scripted)
    assert sent.response.status_code == 200
    assert 25 <= scripted.sleeps[0] <= 31


async def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    scripted = Scripted([error(429, "한도 초과", **{"Retry-After": "120"})])
    sent, causes = await call(scripted, retry=RetryPolicy(retry_after_cap=60))
    assert (sent.response.status_code, sent.attempts) == (429, 1)
    assert sent.response.json()["error"]["message"] == "한도 초과"  # read, for the caller's error
    assert scripted.sleeps == [] and causes == []


async def test_gives_up_after_the_retries_with_backoff_growing_and_capped() -> None:
    scripted = Scripted(default=lambda _: error(502, "게이트웨이 오류"))
    sent, causes = await call(scripted, retry=RetryPolicy(retries=4, base_delay=0.2, max_delay=0.5))
    assert (sent.response.status_code, sent.attempts) == (502, 5)
    assert len(scripted.requests) == 5 and causes == ["502"] * 4
    first, second, third, fourth = scripted.sleeps
    assert 0.1 <= first <= 0.2  # equal jitter: half the step fixed, half at random
    assert 0.2 <= second <= 0.4
    assert 0.25 <= third <= 0.5 and 0.25 <= fourth <= 0.5  # the step stops at max_delay


async def test_client_errors_are_answered_at_once() -> None:
    scripted = Scripted([error(400, "'tools' 형식이 잘못되었습니다")])
    sent, _ = await call(scripted)
    assert (sent.response.status_code, sent.attempts) == (400, 1)
    assert len(scripted.requests) == 1


async def test_a_request_that_never_left_is_always_retried() -> None:
    scripted = Scripted([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
    sent, causes = await call(scripted, resend=False)
    assert sent.response.status_code == 200
    assert causes == ["connect", "connect"]


@pytest.mark.parametrize("failure", [httpx.ReadError("reset"), httpx.ReadTimeout("silent")])
async def test_a_request_that_may_have_arrived_is_resent_only_when_safe(
    failure: Exception,
) -> None:
    unsafe = Scripted([failure])
    with pytest.raises(type(failure)):
        await call(unsafe, resend=False)
    assert len(unsafe.requests) == 1
    safe = Scripted([failure])
    sent, causes = await call(safe, resend=True)
    assert sent.response.status_code == 200 and len(safe.requests) == 2
    assert causes == ["timeout" if isinstance(failure, httpx.TimeoutException) else "transport"]


async def test_the_last_transport_error_is_raised_when_retries_run_out() -> None:
    scripted = Scripted([httpx.ConnectError("refused")] * 3)
    with pytest.raises(httpx.ConnectError, match="refused"):
        await call(scripted, retry=RetryPolicy(retries=2))
    assert len(scripted.requests) == 3


async def test_a_body_cut_off_is_retried_when_read_inside_the_attempt() -> None:
    cut = httpx.Response(200, stream=BreaksAfter(b'{"data": ['))
    scripted = Scripted([cut], default=lambda _: httpx.Response(200, json={"data": []}))
    sent, causes = await call(scripted, resend=True, stream=False)
    assert sent.response.json() == {"data": []}
    assert causes == ["transport"]


async def test_a_streamed_body_is_never_asked_for_again() -> None:
    scripted = Scripted([httpx.Response(200, stream=BreaksAfter(b"data: {}\n\n"))])
    retry = RetryPolicy(sleep=scripted.sleep)
    async with scripted.client() as client:
        sent = await send(client, client.build_request("POST", URL, json=BODY), retry, resend=True)
        chunks = sent.response.aiter_bytes()
        assert await anext(chunks) == b"data: {}\n\n"  # relayed to the client by now
        with pytest.raises(httpx.ReadError):
            await anext(chunks)
        await sent.response.aclose()
    assert len(scripted.requests) == 1


async def test_retries_can_be_turned_off_per_call() -> None:
    scripted = Scripted([error(503, "바쁨")])
    async with scripted.client() as client:
        request = client.build_request("GET", "http://llm.test/v1/models")
        sent = await send(
            client, request, RetryPolicy(sleep=scripted.sleep), resend=True, retries=0
        )
    assert (sent.response.status_code, sent.attempts) == (503, 1)
