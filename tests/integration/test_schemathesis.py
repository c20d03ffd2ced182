"""Property-based run over our own OpenAPI schema: no 500s, every error in OpenAI's envelope.

Schemathesis generates requests from `/openapi.json` (valid and invalid bodies, odd path
parameters, strings in every script) and sends them to the app served under uvicorn, with the
scripted upstream behind it for chat and embeddings. Bounded and derandomized, so it is quick and
repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ragbridge.app import create_app
from ragbridge.settings import Settings
from tests.support.server import serve_in_thread
from tests.support.upstream import ScriptedUpstream, gateway_settings

ADMIN_KEY = "schemathesis-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


# The schema comes from the app object (no server needed to collect the tests); the requests go
# to the same app served under uvicorn. (`schemathesis.pytest.from_fixture` fails on pytest 9.)
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def served_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """ragbridge (admin key, remote embeddings from the scripted upstream) on loopback."""
    data_dir: Path = tmp_path_factory.mktemp("schemathesis") / "data"
    with ScriptedUpstream().serve() as upstream:
        app_settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            sample_collection=False,
            api_key=ADMIN_KEY,
            embedding_base_url=upstream.url,
            embedding_model="scripted-embedding",
            **gateway_settings(upstream),
        )
        with serve_in_thread(create_app(app_settings)) as url:
            yield url


def assert_openai_error_envelope(response: schemathesis.Response) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.text
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, response.text
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_errors_in_openai_envelope(
    case: schemathesis.Case, served_url: str
) -> None:
    response = case.call(base_url=served_url, headers=AUTH, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert_openai_error_envelope(response)
