import pytest

from ragbridge.config_file import sample_env
from ragbridge.settings import Settings


def test_blank_secrets_and_urls_mean_unset() -> None:
    settings = Settings(
        api_key="", upstream_api_key="  ", upstream_base_url=" ", embedding_api_key=""
    )
    assert settings.api_key is None
    assert settings.upstream_api_key is None
    assert settings.embedding_api_key is None
    assert settings.upstream_base_url is None
    assert not settings.upstream_enabled


def test_headers_parse_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBRIDGE_UPSTREAM_HEADERS", '{"User-Id": "{request.header.X-U}"}')
    monkeypatch.setenv("RAGBRIDGE_UPSTREAM_BASE_URL", "http://127.0.0.1:9/v1/")
    settings = Settings()
    assert settings.upstream_headers == {"User-Id": "{request.header.X-U}"}
    assert settings.upstream_base_url == "http://127.0.0.1:9/v1"


def test_blank_json_maps_mean_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBRIDGE_UPSTREAM_HEADERS", "")
    monkeypatch.setenv("RAGBRIDGE_BOOTSTRAP_KEYS", " ")
    settings = Settings()
    assert settings.upstream_headers == {}
    assert settings.bootstrap_keys == {}


def test_sample_env_documents_every_setting() -> None:
    text = sample_env()
    for name in Settings.model_fields:
        assert f"RAGBRIDGE_{name.upper()}=" in text
