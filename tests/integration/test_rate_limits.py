"""Per-key rate limits on the served app: 429 with Retry-After, then recovery.

The app runs with a 2-second window (`rate_limit_window`), so "per minute" budgets refill in
seconds and the tests wait for real, briefly, instead of faking time inside the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import openai
import pytest

from ragbridge.settings import Settings
from tests.support.metrics import Scrape
from tests.support.upstream import Reply, ScriptedUpstream, gateway_settings

ADMIN_KEY = "limits-admin-key"
WINDOW = 2.0  # short enough to wait for, long enough for a loaded machine


@pytest.fixture
def gateway(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    upstream: ScriptedUpstream,
) -> Iterator[httpx.Client]:
    settings = make_settings(
        api_key=ADMIN_KEY, rate_limit_window=WINDOW, **gateway_settings(upstream)
    )
    with (
        serve_app(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as admin,
    ):
        yield admin


def key_client(admin: httpx.Client, name: str, **limits: int) -> httpx.Client:
    created = admin.post("/v1/keys", json={"name": name, **limits})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    return httpx.Client(base_url=admin.base_url, headers=headers, timeout=30)


def ask(text: str) -> dict[str, object]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}]}


def test_rpm_refuses_the_extra_request_then_recovers(gateway: httpx.Client) -> None:
    url = str(gateway.base_url).rstrip("/")
    before = Scrape(url)
    with key_client(gateway, "three-a-window", rpm=3) as client:
        assert [client.get("/v1/models").status_code for _ in range(3)] == [200] * 3
        refused = client.get("/v1/models")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert error["code"] == "requests_rate_limit_exceeded"
        assert "three-a-window" in error["message"]
        time.sleep(float(refused.headers["Retry-After"]) + 0.05)  # as a client should
        assert client.get("/v1/models").status_code == 200
    assert gateway.get("/v1/models").status_code == 200  # the admin key is never limited
    after = Scrape(url)
    name = "ragbridge_rate_limited_requests_total"
    labels = {"key": "three-a-window", "limit": "requests"}
    assert after.value(name, **labels) - before.value(name, **labels) == 1
    assert after.value("ragbridge_http_requests_total", status="429") == 1


def test_keys_are_limited_separately(gateway: httpx.Client) -> None:
    with key_client(gateway, "a", rpm=1) as a, key_client(gateway, "b", rpm=1) as b:
        assert a.get("/v1/models").status_code == 200
        assert a.get("/v1/models").status_code == 429
        assert b.get("/v1/models").status_code == 200


def test_tpm_refuses_prompts_over_the_budget_then_recovers(
    gateway: httpx.Client, upstream: ScriptedUpstream
) -> None:
    # 200 ASCII bytes ≈ 50 tokens: two such prompts fit in 120, a third does not.
    prompt = "x" * 200
    with key_client(gateway, "tokens", tpm=120) as client:
        assert client.post("/v1/chat/completions", json=ask(prompt)).status_code == 200
        asked = len(upstream.chat_requests)
        refused = client.post("/v1/chat/completions", json=ask(prompt * 2))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "tokens_rate_limit_exceeded"
        assert int(refused.headers["Retry-After"]) >= 1
        assert len(upstream.chat_requests) == asked  # refused before reaching the upstream
        assert client.get("/v1/models").status_code == 200  # spends no tokens
        time.sleep(float(refused.headers["Retry-After"]) + 0.05)
        assert client.post("/v1/chat/completions", json=ask(prompt)).status_code == 200


def test_completion_tokens_count_against_the_budget(
    gateway: httpx.Client, upstream: ScriptedUpstream
) -> None:
    # "hi" reserves 1 token on arrival; the upstream then reports 95 completion tokens, so the
    # next prompt (~8 tokens) no longer fits in 100, although the prompts alone would.
    with key_client(gateway, "chatty", tpm=100) as client:
        upstream.script(Reply(tokens=[" word"] * 95))
        assert client.post("/v1/chat/completions", json=ask("hi")).status_code == 200
        refused = client.post("/v1/chat/completions", json=ask("hi again, with some more words"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "tokens_rate_limit_exceeded"


def test_openai_sdk_reads_retry_after(gateway: httpx.Client) -> None:
    with key_client(gateway, "sdk", rpm=1) as client:
        key = client.headers["Authorization"].removeprefix("Bearer ")
    base_url = str(gateway.base_url).rstrip("/") + "/v1"
    sdk = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    sdk.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.models.list()
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= WINDOW
    retrying = openai.OpenAI(base_url=base_url, api_key=key, max_retries=2)
    assert retrying.models.list().data is not None  # the SDK waited Retry-After and got in
