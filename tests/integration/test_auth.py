"""API keys against the served app: who gets in, what admin-only means, collection scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx
import openai
import pytest

from ragbridge.settings import Settings
from tests.support.upstream import ScriptedUpstream, gateway_settings

ADMIN_KEY = "admin-secret-for-tests"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    return error  # type: ignore[no-any-return]


@dataclass
class Secured:
    url: str
    admin: httpx.Client

    def create_key(self, name: str, **fields: object) -> str:
        response = self.admin.post("/v1/keys", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def as_key(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(key), timeout=30)


@pytest.fixture
def secured(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    upstream: ScriptedUpstream,
) -> Iterator[Secured]:
    """ragbridge with an admin key, an upstream, and collections `alpha` and `beta`."""
    settings = make_settings(api_key=ADMIN_KEY, **gateway_settings(upstream))
    with (
        serve_app(settings) as url,
        httpx.Client(base_url=url, headers=bearer(ADMIN_KEY), timeout=30) as admin,
    ):
        for name in ("alpha", "beta"):
            assert admin.post("/v1/collections", json={"name": name}).status_code in (200, 201)
        yield Secured(url, admin)


PROTECTED = [
    ("GET", "/v1/models", None),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("POST", "/v1/embeddings", {"model": "m", "input": "hi"}),
    ("GET", "/v1/collections", None),
    ("POST", "/v1/search", {"collection": "alpha", "query": "hi"}),
    ("GET", "/v1/keys", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_no_key_is_401_with_a_bearer_challenge(
    secured: Secured, method: str, path: str, body: object
) -> None:
    response = httpx.request(method, secured.url + path, json=body)
    error = assert_error(response, 401, "authentication_error")
    assert error["code"] == "missing_api_key"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("key", ["rb-" + "x" * 43, "not-even-our-format", ADMIN_KEY + "x"])
def test_wrong_key_is_401(secured: Secured, key: str) -> None:
    response = httpx.get(secured.url + "/v1/models", headers=bearer(key))
    assert assert_error(response, 401, "authentication_error")["code"] == "invalid_api_key"


def test_openai_sdk_sees_an_authentication_error(secured: Secured) -> None:
    client = openai.OpenAI(base_url=secured.url + "/v1", api_key="rb-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    good = openai.OpenAI(base_url=secured.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    assert good.models.list().data is not None


def test_health_and_metrics_need_no_key(secured: Secured) -> None:
    assert httpx.get(secured.url + "/health").status_code == 200
    assert httpx.get(secured.url + "/metrics").status_code == 200


def test_revoked_key_is_401_at_once(secured: Secured) -> None:
    key = secured.create_key("soon-gone")
    with secured.as_key(key) as client:
        assert client.get("/v1/models").status_code == 200
        assert secured.admin.delete("/v1/keys/soon-gone").status_code == 200
        assert_error(client.get("/v1/models"), 401, "authentication_error")
    assert_error(secured.admin.delete("/v1/keys/soon-gone"), 404, "not_found_error")


def test_key_listing_never_shows_keys_or_hashes(secured: Secured) -> None:
    key = secured.create_key("listed", collections=["alpha"], rpm=5)
    listing = secured.admin.get("/v1/keys")
    assert listing.status_code == 200
    (entry,) = [k for k in listing.json()["data"] if k["name"] == "listed"]
    assert entry == {
        "name": "listed",
        "collections": ["alpha"],
        "rpm": 5,
        "tpm": None,
        "created_at": entry["created_at"],
        "revoked": False,
    }
    assert key not in listing.text and key[3:] not in listing.text


ADMIN_ONLY = [
    ("POST", "/v1/collections", {"name": "gamma"}),
    ("DELETE", "/v1/collections/alpha", None),
    ("DELETE", "/v1/collections/alpha/documents/some-id", None),
    ("POST", "/v1/keys", {"name": "sneaky"}),
    ("GET", "/v1/keys", None),
    ("DELETE", "/v1/keys/anyone", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_admin_only_routes_refuse_normal_keys(
    secured: Secured, method: str, path: str, body: object
) -> None:
    with secured.as_key(secured.create_key("user")) as client:
        response = client.request(method, path, json=body)
    assert assert_error(response, 403, "permission_error")["code"] == "admin_required"


def test_document_upload_is_admin_only(secured: Secured) -> None:
    files = {"file": ("notes.txt", b"Some notes.", "text/plain")}
    with secured.as_key(secured.create_key("user")) as client:
        response = client.post("/v1/collections/alpha/documents", files=files)
    assert_error(response, 403, "permission_error")
    assert secured.admin.get("/v1/collections/alpha/documents").json()["data"] == []


def test_duplicate_key_name_is_409(secured: Secured) -> None:
    secured.create_key("twice")
    response = secured.admin.post("/v1/keys", json={"name": "twice"})
    assert_error(response, 409, "conflict_error")


def test_scoped_key_sees_only_its_collections(secured: Secured) -> None:
    with secured.as_key(secured.create_key("alpha-only", collections=["alpha"])) as client:
        models = {m["id"] for m in client.get("/v1/models").json()["data"]}
        assert "rag/alpha" in models and "gpt-test" in models
        assert not any(m.startswith("rag/beta") for m in models)
        names = {c["name"] for c in client.get("/v1/collections").json()["data"]}
        assert names == {"alpha"}
        assert client.get("/v1/collections/alpha/documents").status_code == 200
        assert client.get("/v1/collections/alpha").status_code == 200
    everything = {c["name"] for c in secured.admin.get("/v1/collections").json()["data"]}
    assert everything == {"alpha", "beta"}
    admin_models = {m["id"] for m in secured.admin.get("/v1/models").json()["data"]}
    assert {"rag/alpha", "rag/beta"} <= admin_models


def test_scoped_key_gets_the_same_404_as_for_a_missing_collection(secured: Secured) -> None:
    with secured.as_key(secured.create_key("alpha-only", collections=["alpha"])) as client:
        for name in ("beta", "nonexistent"):
            listing = client.get(f"/v1/collections/{name}/documents")
            search = client.post("/v1/search", json={"collection": name, "query": "x"})
            errors = [assert_error(r, 404, "not_found_error") for r in (listing, search)]
            assert all(name in str(e["message"]) for e in errors)
        hidden = client.get("/v1/collections/beta/documents").json()
        missing = client.get("/v1/collections/nonexistent/documents").json()
        assert hidden["error"]["message"].replace("beta", "X") == missing["error"][
            "message"
        ].replace("nonexistent", "X")


def test_scoped_key_cannot_chat_with_another_collections_model(
    secured: Secured, upstream: ScriptedUpstream
) -> None:
    chat = {"messages": [{"role": "user", "content": "What is in there?"}]}
    asked_before = len(upstream.chat_requests)
    with secured.as_key(secured.create_key("alpha-only", collections=["alpha"])) as client:
        for hidden_model, missing_model in [
            ("rag/beta", "rag/nope"),
            ("rag/beta/gpt-test", "rag/nope/gpt-test"),
        ]:
            hidden = client.post("/v1/chat/completions", json={"model": hidden_model, **chat})
            missing = client.post("/v1/chat/completions", json={"model": missing_model, **chat})
            error = assert_error(hidden, 404, "not_found_error")
            assert error["code"] == "model_not_found" and error["param"] == "model"
            assert str(error["message"]).replace(hidden_model, "M") == str(
                assert_error(missing, 404, "not_found_error")["message"]
            ).replace(missing_model, "M")
        assert len(upstream.chat_requests) == asked_before  # refused before going upstream
        allowed = client.post("/v1/chat/completions", json={"model": "rag/alpha", **chat})
        plain = client.post("/v1/chat/completions", json={"model": "gpt-test", **chat})
    assert allowed.status_code == 200, allowed.text
    assert plain.status_code == 200, plain.text  # upstream models are not collection-scoped


def test_without_an_admin_key_auth_is_off(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    with serve_app(make_settings()) as url:
        assert httpx.get(url + "/v1/models").status_code == 200
        created = httpx.post(url + "/v1/keys", json={"name": "k"})
        assert created.status_code == 201
        assert httpx.get(url + "/v1/keys", headers=bearer("anything")).status_code == 200
