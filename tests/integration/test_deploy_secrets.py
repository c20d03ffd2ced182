"""Deploy secrets: weak or placeholder keys refuse to start, clients get their own non-admin key
from `RAGBRIDGE_BOOTSTRAP_KEYS`, `/metrics` can take a key, and `/ready` tells strangers only
ready / not ready."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import yaml

from ragbridge.api.secrets_policy import WeakSecretError, check_secrets
from ragbridge.settings import Settings
from tests.support.cli import run_ragbridge
from tests.support.server import free_port, ragbridge_env

Serve = Callable[[Settings], AbstractContextManager[str]]
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "rb-admin-" + "a1" * 20
WEBUI = "rb-" + "b2" * 24
METRICS = "metrics-" + "c3" * 16


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"host": "0.0.0.0", "api_key": "change-me-admin-key"}, "RAGBRIDGE_API_KEY"),
        ({"host": "0.0.0.0", "api_key": "short-but-real-key-1234"}, "at least 32"),
        ({"metrics_key": "changeme" * 5}, "RAGBRIDGE_METRICS_KEY"),
        ({"bootstrap_keys": {"open-webui": "sk-" + "x1" * 20}}, "must start with 'rb-'"),
        (
            {"bootstrap_keys": {"open-webui": "rb-change-me-open-webui-key-0123456789"}},
            "placeholder",
        ),
        ({"api_key": ADMIN, "bootstrap_keys": {"open-webui": ADMIN}}, "differ from the admin"),
        ({"bootstrap_keys": {"admin": WEBUI}}, "key names"),
    ],
)
def test_weak_or_placeholder_keys_are_refused(
    make_settings: Callable[..., Settings], overrides: dict[str, object], names: str
) -> None:
    with pytest.raises(WeakSecretError, match=names) as raised:
        check_secrets(make_settings(**overrides))
    assert "\n" not in str(raised.value)


def test_strong_keys_and_loopback_test_keys_pass(make_settings: Callable[..., Settings]) -> None:
    check_secrets(make_settings(host="0.0.0.0", api_key=ADMIN, metrics_key=METRICS))
    check_secrets(make_settings(api_key="short-on-loopback"))  # only this machine can reach it
    check_secrets(make_settings(bootstrap_keys={"open-webui": WEBUI}))


def test_the_shipped_kubernetes_placeholder_does_not_start(tmp_path: Path) -> None:
    """`ragbridge serve` with the example secret exits at once with one clear line."""
    secret = yaml.safe_load((ROOT / "deploy/k8s/secret.yaml").read_text(encoding="utf-8"))
    env = ragbridge_env(
        tmp_path / "data",
        RAGBRIDGE_API_KEY=secret["stringData"]["RAGBRIDGE_API_KEY"],
        RAGBRIDGE_HOST="0.0.0.0",
        RAGBRIDGE_PORT=str(free_port()),
    )
    done = run_ragbridge("serve", env=env, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Refusing to start: RAGBRIDGE_API_KEY")
    assert "openssl rand" in lines[0]


def test_a_bootstrap_key_is_a_non_admin_key_replaced_when_it_changes(
    make_settings: Callable[..., Settings], serve_app: Serve
) -> None:
    settings = make_settings(api_key=ADMIN, bootstrap_keys={"open-webui": WEBUI})
    with serve_app(settings) as url:
        assert httpx.get(f"{url}/v1/models", headers=auth(WEBUI)).status_code == 200
        create = httpx.post(f"{url}/v1/collections", json={"name": "문서"}, headers=auth(WEBUI))
        assert create.status_code == 403
        assert create.json()["error"]["code"] == "admin_required"
    renewed = "rb-" + "d4" * 24
    with serve_app(make_settings(api_key=ADMIN, bootstrap_keys={"open-webui": renewed})) as url:
        assert httpx.get(f"{url}/v1/models", headers=auth(WEBUI)).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers=auth(renewed)).status_code == 200
        keys = httpx.get(f"{url}/v1/keys", headers=auth(ADMIN)).json()["data"]
    live = [k for k in keys if k["name"] == "open-webui" and not k.get("revoked")]
    assert len(live) == 1


def test_metrics_take_the_metrics_key_or_the_admin_key(
    make_settings: Callable[..., Settings], serve_app: Serve
) -> None:
    settings = make_settings(
        api_key=ADMIN, metrics_key=METRICS, bootstrap_keys={"open-webui": WEBUI}
    )
    with serve_app(settings) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics", headers=auth(WEBUI)).status_code == 401
        scraped = httpx.get(f"{url}/metrics", headers=auth(METRICS))
        assert scraped.status_code == 200 and "ragbridge_http_requests" in scraped.text
        assert httpx.get(f"{url}/metrics", headers=auth(ADMIN)).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no key


def test_ready_tells_strangers_only_which_part_is_not_ready(
    make_settings: Callable[..., Settings], serve_app: Serve
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(api_key=ADMIN, upstream_base_url=dead, upstream_api_key="sk-up")
    with serve_app(settings) as url:
        stranger = httpx.get(f"{url}/ready", timeout=30)
        admin = httpx.get(f"{url}/ready", headers=auth(ADMIN), timeout=30)
    assert stranger.status_code == admin.status_code == 503
    body = stranger.json()
    assert body["status"] == "not ready"
    assert body["checks"]["store"] == {"status": "ok"}
    assert body["checks"]["upstream"] == {"status": "error"}
    assert all(set(check) == {"status"} for check in body["checks"].values())  # no details
    assert dead not in stranger.text and "127.0.0.1" not in stranger.text
    detail = admin.json()["checks"]["upstream"]
    assert detail["url"] == dead and "Cannot reach" in detail["detail"]
