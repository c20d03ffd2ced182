"""`GET /ready` says whether the upstream LLM answers; with none, it is ready (extractive)."""

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from ragbridge.settings import Settings
from tests.support.server import free_port
from tests.support.upstream import ScriptedUpstream, gateway_settings


def test_ready_when_the_upstream_answers(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    with serve_app(make_settings(**gateway_settings(upstream))) as url:
        response = httpx.get(f"{url}/ready")
    assert response.status_code == 200
    check = response.json()["checks"]["upstream"]
    assert check["status"] == "ok" and check["url"] == upstream.url
    assert any(r.path == "/v1/models" for r in upstream.requests)


def test_not_ready_when_the_upstream_is_down(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with serve_app(make_settings(upstream_base_url=dead)) as url:
        response = httpx.get(f"{url}/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["upstream"]["status"] == "error"
    assert "Cannot reach" in body["checks"]["upstream"]["detail"]


def test_not_ready_when_the_upstream_fails(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    upstream.models_status = 503
    with serve_app(make_settings(**gateway_settings(upstream))) as url:
        response = httpx.get(f"{url}/ready")
    assert response.status_code == 503
    assert "models unavailable" in response.json()["checks"]["upstream"]["detail"]


def test_ready_in_extractive_mode_without_an_upstream(app_url: str) -> None:
    response = httpx.get(f"{app_url}/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["upstream"]["status"] == "extractive"
