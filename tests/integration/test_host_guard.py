"""DNS rebinding and cross-site writes, against the real server: a forged Host gets 421, and a
web page of another origin cannot add documents while keys are off (the quick-start default)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from ragbridge.api.origin import allowed_hosts, host_name
from ragbridge.settings import Settings
from tests.support.upstream import ScriptedUpstream

Serve = Callable[[Settings], AbstractContextManager[str]]
KOREAN_DOC = "부산은 대한민국 제2의 도시이며 해운대 해수욕장으로 유명하다.\n".encode()


@pytest.fixture
def settings_for(
    upstream: ScriptedUpstream, make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings whose embeddings come from the scripted upstream (fast, deterministic)."""

    def make(**overrides: Any) -> Settings:
        values = {"embedding_base_url": upstream.url, "embedding_model": "stub-embed"}
        return make_settings(**{**values, **overrides})

    return make


@pytest.fixture
def base_url(settings_for: Callable[..., Settings], serve_app: Serve) -> Iterator[str]:
    with serve_app(settings_for()) as url:
        yield url


def upload(url: str, headers: dict[str, str], name: str = "부산.txt") -> httpx.Response:
    """A multipart upload, as an HTML form on any web page can send without a preflight."""
    return httpx.post(
        f"{url}/v1/collections/도시/documents",
        files={"file": (name, KOREAN_DOC, "text/plain")},
        headers=headers,
        timeout=60,
    )


def documents(url: str) -> list[str]:
    response = httpx.get(f"{url}/v1/collections/도시/documents", timeout=30)
    return [] if response.status_code == 404 else [d["source"] for d in response.json()["data"]]


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


@pytest.mark.parametrize("host", ["evil.example", "attacker.example:8000", "127.0.0.2", "[::2]"])
def test_a_forged_host_is_refused(base_url: str, host: str) -> None:
    """DNS rebinding: the page's own name arrives as Host, whatever address it resolved to."""
    response = httpx.get(f"{base_url}/v1/collections", headers={"Host": host})
    body = error(response, 421)
    assert body["code"] == "host_not_allowed" and "RAGBRIDGE_ALLOWED_HOSTS" in body["message"]
    assert response.headers["x-request-id"]  # logged and counted like any request


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_are_served(base_url: str, host: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    response = httpx.get(f"{base_url}/v1/collections", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200


def test_an_explicit_allow_list_replaces_the_default(
    settings_for: Callable[..., Settings], serve_app: Serve
) -> None:
    with serve_app(settings_for(allowed_hosts="rag.internal, 127.0.0.1")) as url:
        assert httpx.get(f"{url}/health", headers={"Host": "rag.internal"}).status_code == 200
        assert httpx.get(f"{url}/health", headers={"Host": "localhost"}).status_code == 421
        assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_site_form_post_adds_nothing(base_url: str, headers: dict[str, str]) -> None:
    body = error(upload(base_url, headers), 403)
    assert body["code"] == "cross_site_request"
    assert documents(base_url) == []
    # Deleting is a write too.
    response = httpx.delete(f"{base_url}/v1/collections/도시", headers=headers)
    assert error(response, 403)["code"] == "cross_site_request"


def test_same_origin_pages_and_scripts_may_write(base_url: str) -> None:
    assert upload(base_url, {}).status_code == 201  # curl, SDKs: no Origin, no Sec-Fetch-Site
    same_origin = {"Origin": base_url, "Sec-Fetch-Site": "same-origin"}
    assert upload(base_url, same_origin, name="서울.txt").status_code == 201
    sources = documents(base_url)
    assert len(sources) == 2 and {"부산", "서울"} == {s.rsplit("/", 1)[-1][:2] for s in sources}


def test_reads_from_another_site_are_not_refused(base_url: str) -> None:
    """A cross-site GET cannot read the answer (no CORS) and changes nothing."""
    response = httpx.get(f"{base_url}/health", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_an_origin_listed_for_cors_may_write(
    settings_for: Callable[..., Settings], serve_app: Serve
) -> None:
    with serve_app(settings_for(cors_origins=["https://tool.example"])) as url:
        assert upload(url, {"Origin": "https://tool.example"}).status_code == 201
        assert error(upload(url, {"Origin": "https://evil.example"}), 403)


def test_with_keys_on_the_key_decides(
    settings_for: Callable[..., Settings], serve_app: Serve
) -> None:
    """A page cannot send the bearer key by itself, so cross-site checks are left to the key."""
    key = "rb-test-admin-key-long-enough-0123456789"
    with serve_app(settings_for(api_key=key)) as url:
        cross = {"Origin": "https://evil.example"}
        assert error(upload(url, cross), 401)["code"] == "missing_api_key"
        authorised = {**cross, "Authorization": f"Bearer {key}"}
        assert upload(url, authorised).status_code == 201


def test_allowed_host_defaults() -> None:
    loopback = allowed_hosts(Settings(host="127.0.0.1", _env_file=None))
    assert loopback is not None and {"localhost", "127.0.0.1", "::1"} <= loopback
    assert allowed_hosts(Settings(host="0.0.0.0", api_key="k" * 40, _env_file=None)) is None
    assert allowed_hosts(Settings(allowed_hosts="*", _env_file=None)) is None
    assert allowed_hosts(Settings(allowed_hosts='["a.b"]', _env_file=None)) == frozenset({"a.b"})
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM:80") == "example.com"
    assert host_name("::1") == "::1"
