"""Retries, upstream failures and bad input: the right status in OpenAI's envelope, no traces.

Backoff and `Retry-After` timing are tested without a wire in tests/unit/http."""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from ragbridge.settings import Settings
from tests.support.server import free_port
from tests.support.upstream import Reply, ScriptedUpstream

Serve = Callable[..., AbstractContextManager[str]]
CHAT = {"model": "stub-alpha", "messages": [{"role": "user", "content": "hi"}]}
STREAMED = {**CHAT, "stream": True}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error envelope of `response`, which must have `status`."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_retry_then_success(serve: Serve, upstream: ScriptedUpstream, body: dict[str, Any]) -> None:
    upstream.fail_next(2, 503)
    with serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert "Hello" in response.text
    assert len(upstream.chat_requests) == 3
    assert all(r.body == body for r in upstream.chat_requests)


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_retry_exhaustion_is_a_502_with_the_upstreams_message(
    serve: Serve, upstream: ScriptedUpstream, body: dict[str, Any]
) -> None:
    upstream.fail_next(3, 503, message="model overloaded, try later")
    with serve(upstream_max_retries=2) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    error = error_of(response, 502)
    assert "model overloaded, try later" in error["message"]
    assert error["type"] == "upstream_error"
    assert len(upstream.chat_requests) == 3


def test_429_that_persists_is_relayed_with_retry_after(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.fail_next(2, 429, message="quota exhausted", retry_after="0")
    with serve(upstream_max_retries=1) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
    assert "quota exhausted" in error_of(response, 429)["message"]
    assert response.headers["retry-after"] == "0"


def test_client_errors_are_not_retried(serve: Serve, upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(status=400, message="'tools' is malformed"))
    with serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
    assert "'tools' is malformed" in error_of(response, 400)["message"]
    assert len(upstream.chat_requests) == 1


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_upstream_down_is_a_502(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    body: dict[str, Any],
) -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(upstream_base_url=base, upstream_retry_base_delay=0.01)
    with serve_app(settings) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
        models = httpx.get(f"{url}/v1/models")
    assert "Cannot reach the upstream LLM" in error_of(response, 502)["message"]
    assert "Cannot reach the upstream LLM" in error_of(models, 502)["message"]


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_upstream_slower_than_the_read_timeout_is_a_504(
    serve: Serve, upstream: ScriptedUpstream, body: dict[str, Any]
) -> None:
    upstream.script(Reply(first_byte_delay=10))
    with serve(upstream_read_timeout=0.5) as url:
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert error_of(response, 504)["type"] == "upstream_timeout"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_upstream_answering_something_other_than_json_is_a_502(
    serve: Serve, upstream: ScriptedUpstream, body: dict[str, Any]
) -> None:
    upstream.script(Reply(raw=b"<html>502 Bad Gateway</html>"))
    with serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert "502 Bad Gateway" in error_of(response, 502)["message"]


BAD_REQUESTS: list[tuple[bytes, str | None, str]] = [  # body, error param, part of the message
    (b'{"model": "stub-alpha", "messages": [', None, "not valid JSON"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "model"),
    (b'{"model": "", "messages": [{"role": "user", "content": "hi"}]}', "model", "model"),
    (b'{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', "model", "model"),
    (b'{"model": "stub-alpha"}', "messages", "messages"),
    (b'{"model": "stub-alpha", "messages": []}', "messages", "at least 1"),
    (b'{"model": "stub-alpha", "messages": "hi"}', "messages", "messages"),
    (b'{"model": "stub-alpha", "messages": [{"content": "hi"}]}', "messages.0.role", "role"),
    (
        b'{"model": "stub-alpha", "messages": [{"role": "wizard", "content": "hi"}]}',
        "messages.0.role",
        "role",
    ),
    (
        b'{"model": "stub-alpha", "messages": [{"role": "user", "content": 5}]}',
        "messages.0.content",
        "content",
    ),
    (
        b'{"model": "stub-alpha", "stream": "yes", "messages": [{"role": "user"}]}',
        "stream",
        "stream",
    ),
    (b'["not", "an", "object"]', None, ""),
]


def test_bad_requests_are_400s(serve: Serve, upstream: ScriptedUpstream) -> None:
    with serve() as url:
        for content, param_part, message_part in BAD_REQUESTS:
            response = httpx.post(
                f"{url}/v1/chat/completions",
                content=content,
                headers={"content-type": "application/json"},
            )
            error = error_of(response, 400)
            assert error["type"] == "invalid_request_error", content
            assert message_part in error["message"], (content, error)
            if param_part:
                assert (error["param"] or "").startswith(param_part), (content, error)
    assert upstream.chat_requests == []


def test_too_many_messages_is_a_400(serve: Serve, upstream: ScriptedUpstream) -> None:
    body = {"model": "stub-alpha", "messages": [{"role": "user", "content": "x"}] * 4}
    with serve(max_messages=3) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert "messages" in error_of(response, 400)["message"].lower()
    assert upstream.chat_requests == []


@pytest.mark.parametrize("body", [CHAT, STREAMED])
def test_unknown_model_is_a_404(
    serve: Serve, upstream: ScriptedUpstream, body: dict[str, Any]
) -> None:
    with serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "gpt-9"})
    error = error_of(response, 404)
    assert "gpt-9" in error["message"] and error["param"] == "model"
    assert error["code"] == "model_not_found"
    assert upstream.chat_requests == []


def test_model_list_is_cached_then_refreshed(serve: Serve, upstream: ScriptedUpstream) -> None:
    def model_fetches() -> int:
        return sum(r.path == "/v1/models" for r in upstream.requests)

    with serve(upstream_models_ttl=0.5) as url:
        for _ in range(3):
            assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200
        assert model_fetches() == 1
        upstream.models.append("new-model")
        new = {**CHAT, "model": "new-model"}
        assert httpx.post(f"{url}/v1/chat/completions", json=new).status_code == 404
        time.sleep(0.6)
        assert httpx.post(f"{url}/v1/chat/completions", json=new).status_code == 200
        assert model_fetches() == 2


def test_without_a_model_list_chats_go_through_and_the_upstream_decides(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.models_status = 500
    with serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "model": "anything"})
        models = httpx.get(f"{url}/v1/models")
    assert response.status_code == 200
    assert upstream.chat_requests[-1].body["model"] == "anything"
    assert "models unavailable" in error_of(models, 502)["message"]


def test_no_upstream_configured(app_url: str) -> None:
    response = httpx.post(f"{app_url}/v1/chat/completions", json=CHAT)
    error = error_of(response, 404)
    assert "no upstream LLM is configured" in error["message"]
    assert error["code"] == "model_not_found"
    streamed = httpx.post(f"{app_url}/v1/chat/completions", json=STREAMED)
    assert "no upstream LLM is configured" in error_of(streamed, 404)["message"]
    assert httpx.get(f"{app_url}/v1/models").json() == {"object": "list", "data": []}
