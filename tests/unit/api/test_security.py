"""Which bind addresses need an admin key; which models a collection-scoped key may see."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragbridge.api.security import (
    Principal,
    UnsafeBindError,
    check_bind_safety,
    ensure_model_access,
    is_loopback,
    visible_models,
)
from ragbridge.errors import NotFound
from ragbridge.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "ragbridge.internal"])
def test_reachable_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_no_key_is_refused_off_loopback(make_settings: Callable[..., Settings]) -> None:
    check_bind_safety(make_settings(host="127.0.0.1"))
    check_bind_safety(make_settings(host="0.0.0.0", api_key="k"))
    with pytest.raises(UnsafeBindError, match="RAGBRIDGE_API_KEY"):
        check_bind_safety(make_settings(host="0.0.0.0"))


def test_scoped_keys_see_and_use_only_their_rag_models() -> None:
    scoped = Principal("team", collections=frozenset({"alpha"}))
    models = [{"id": i} for i in ("gpt-test", "rag/alpha", "rag/alpha/gpt-test", "rag/beta")]
    assert [m["id"] for m in visible_models(scoped, models)] == [
        "gpt-test",
        "rag/alpha",
        "rag/alpha/gpt-test",
    ]
    assert visible_models(Principal("all"), models) == models
    ensure_model_access(scoped, "rag/alpha/gpt-test")
    ensure_model_access(scoped, "gpt-test")
    with pytest.raises(NotFound, match="rag/beta"):
        ensure_model_access(scoped, "rag/beta")
