"""What wraps every request: request ids, input limits, CORS, metrics and the access log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from ragbridge.settings import Settings
from tests.support.metrics import Scrape
from tests.support.upstream import ScriptedUpstream, gateway_settings

ADMIN_KEY = "envelope-admin-key"
Serve = Callable[[Settings], AbstractContextManager[str]]


def chat(*contents: str, model: str = "gpt-test") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": c} for c in contents]}


@pytest.fixture
def gateway(
    make_settings: Callable[..., Settings], serve_app: Serve, upstream: ScriptedUpstream
) -> Iterator[httpx.Client]:
    """ragbridge (admin key, small limits) in front of the scripted upstream."""
    settings = make_settings(
        api_key=ADMIN_KEY, max_request_bytes=4096, max_messages=3, **gateway_settings(upstream)
    )
    with (
        serve_app(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as client,
    ):
        yield client


def test_request_id_is_echoed_or_made(gateway: httpx.Client) -> None:
    echoed = gateway.get("/health", headers={"X-Request-ID": "trace-42:a.b_c"})
    assert echoed.headers["X-Request-ID"] == "trace-42:a.b_c"
    made = gateway.get("/health").headers["X-Request-ID"]
    assert len(made) == 32 and made != gateway.get("/health").headers["X-Request-ID"]
    for unsafe in ["has spaces", "x" * 129, 'quote"d']:
        replaced = gateway.get("/health", headers={"X-Request-ID": unsafe})
        assert replaced.headers["X-Request-ID"] not in (unsafe, "")
    error = gateway.get("/v1/nope", headers={"X-Request-ID": "err-1"})
    assert error.status_code == 404 and error.headers["X-Request-ID"] == "err-1"


def test_body_over_max_request_bytes_is_413(gateway: httpx.Client) -> None:
    big = chat("x" * 5000)
    response = gateway.post("/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert "4096" in response.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        body = json.dumps(big).encode()
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    streamed = gateway.post(
        "/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert gateway.post("/v1/chat/completions", json=chat("x" * 3000)).status_code == 200


def test_uploads_have_their_own_larger_limit(
    make_settings: Callable[..., Settings], serve_app: Serve, upstream: ScriptedUpstream
) -> None:
    settings = make_settings(
        max_request_bytes=4096,
        max_upload_bytes=64 * 1024,
        embedding_base_url=upstream.url,
        embedding_model="scripted-embedding",
        **gateway_settings(upstream),
    )
    paragraph = "Uploads are multipart and may be larger than JSON bodies. " * 4
    with serve_app(settings) as url:
        fits = ("\n\n".join([paragraph] * 40)).encode()  # ~10 KB: over 4 KiB, under 64 KiB
        uploaded = httpx.post(
            f"{url}/v1/collections/docs/documents",
            files={"file": ("big.txt", fits, "text/plain")},
            timeout=60,
        )
        assert uploaded.status_code == 201, uploaded.text
        too_big = httpx.post(
            f"{url}/v1/collections/docs/documents",
            files={"file": ("huge.txt", b"x" * (100 * 1024), "text/plain")},
            timeout=60,
        )
        assert too_big.status_code == 413
        assert set(too_big.json()["error"]) == {"message", "type", "param", "code"}


def test_too_many_messages_is_400(gateway: httpx.Client, upstream: ScriptedUpstream) -> None:
    before = len(upstream.chat_requests)
    response = gateway.post("/v1/chat/completions", json=chat("a", "b", "c", "d"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and error["code"] == "too_many_messages"
    assert len(upstream.chat_requests) == before  # refused before it cost anything
    assert gateway.post("/v1/chat/completions", json=chat("a", "b", "c")).status_code == 200


def test_http_metrics_move_with_requests(gateway: httpx.Client) -> None:
    url = str(gateway.base_url).rstrip("/")
    route = {"route": "/v1/chat/completions", "method": "POST"}
    before = Scrape(url)
    for _ in range(3):
        assert gateway.post("/v1/chat/completions", json=chat("hello")).status_code == 200
    gateway.post("/v1/chat/completions", json=chat("a", "b", "c", "d"))  # 400
    after = Scrape(url)
    ok = {**route, "status": "200", "model": "gpt-test"}
    name = "ragbridge_http_requests_total"
    assert after.value(name, **ok) - before.value(name, **ok) == 3
    refused = {**route, "status": "400", "model": ""}
    assert after.value(name, **refused) - before.value(name, **refused) == 1
    latency = "ragbridge_http_request_duration_seconds_count"
    assert after.value(latency, **route) - before.value(latency, **route) == 4
    assert after.value("ragbridge_http_requests_in_flight") == 1  # the scrape itself


def test_token_and_time_to_first_token_metrics_move(gateway: httpx.Client) -> None:
    url = str(gateway.base_url).rstrip("/")
    ttft = "ragbridge_time_to_first_token_seconds_count"
    before = Scrape(url)
    # non-streamed: the upstream's usage (3 words of prompt, 4 tokens of answer) is counted
    assert gateway.post("/v1/chat/completions", json=chat("one two three")).status_code == 200
    middle = Scrape(url)
    with gateway.stream(
        "POST", "/v1/chat/completions", json={**chat("hello"), "stream": True}
    ) as streamed:
        assert streamed.status_code == 200
        assert [line for line in streamed.iter_lines() if line][-1] == "data: [DONE]"
    after = Scrape(url)

    def delta(a: Scrape, b: Scrape, direction: str) -> float:
        labels = {"model": "gpt-test", "key": "admin", "direction": direction}
        return b.value("ragbridge_tokens_total", **labels) - a.value(
            "ragbridge_tokens_total", **labels
        )

    assert delta(before, middle, "prompt") == 3 and delta(before, middle, "completion") == 4
    assert middle.value(ttft, model="gpt-test") == before.value(ttft, model="gpt-test")
    # streamed without include_usage: 4 content chunks, prompt as estimated on arrival
    assert delta(middle, after, "completion") == 4 and delta(middle, after, "prompt") >= 1
    assert after.value(ttft, model="gpt-test") - middle.value(ttft, model="gpt-test") == 1


def _access_record(caplog: pytest.LogCaptureFixture, request_id: str) -> logging.LogRecord:
    """The one access line for `request_id`; it is written just after the response is sent."""
    deadline = time.monotonic() + 5
    while True:
        lines = [
            r
            for r in caplog.records
            if r.name == "ragbridge.access" and r.fields["request_id"] == request_id  # type: ignore[attr-defined]
        ]
        if lines or time.monotonic() > deadline:
            (line,) = lines
            return line
        time.sleep(0.02)


def test_one_access_log_line_per_request_without_the_key(
    gateway: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ragbridge")
    response = gateway.post(
        "/v1/chat/completions", json=chat("secret question"), headers={"X-Request-ID": "log-1"}
    )
    assert response.status_code == 200
    line = _access_record(caplog, "log-1")
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["key"] == "admin" and fields["status"] == 200
    assert fields["route"] == "/v1/chat/completions" and fields["model"] == "gpt-test"
    assert fields["latency_ms"] > 0
    assert (fields["tokens_in"], fields["tokens_out"]) == (2, 4)  # the upstream's usage
    everything = caplog.text + json.dumps([getattr(r, "fields", None) for r in caplog.records])
    assert ADMIN_KEY not in everything
    assert "secret question" not in everything  # user text is off by default


def test_user_text_is_logged_only_when_configured(
    make_settings: Callable[..., Settings],
    serve_app: Serve,
    upstream: ScriptedUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ragbridge")
    settings = make_settings(log_user_text=True, **gateway_settings(upstream))
    with serve_app(settings) as url:
        body = chat("earlier", "서울의 인구는?")
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 200
    (line,) = [
        r for r in caplog.records if getattr(r, "fields", {}).get("route") == "/v1/chat/completions"
    ]
    assert line.fields["user_text"] == "서울의 인구는?"  # type: ignore[attr-defined]
    assert line.fields["key"] == "anonymous"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("origins", "credentials"), [(["https://chat.example"], "true"), (["*"], None)]
)
def test_cors_origins_and_no_wildcard_with_credentials(
    make_settings: Callable[..., Settings],
    serve_app: Serve,
    origins: list[str],
    credentials: str | None,
) -> None:
    settings = make_settings(api_key=ADMIN_KEY, cors_origins=origins)
    with serve_app(settings) as url:
        preflight = httpx.options(
            url + "/v1/chat/completions",
            headers={
                "Origin": "https://chat.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] in ("https://chat.example", "*")
        assert preflight.headers.get("Access-Control-Allow-Credentials") == credentials
        # errors carry CORS headers too, so a browser can read them
        refused = httpx.get(url + "/v1/models", headers={"Origin": "https://chat.example"})
        assert refused.status_code == 401
        assert "Access-Control-Allow-Origin" in refused.headers
        assert "x-request-id" in refused.headers["Access-Control-Expose-Headers"].lower()
        other = httpx.get(url + "/health", headers={"Origin": "https://evil.example"})
        allowed = other.headers.get("Access-Control-Allow-Origin")
        assert allowed == ("*" if origins == ["*"] else None)


def test_no_cors_headers_unless_configured(app_url: str) -> None:
    response = httpx.get(app_url + "/health", headers={"Origin": "https://chat.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
