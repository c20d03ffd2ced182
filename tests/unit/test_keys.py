"""Key creation: random, hashed before storing, validated; against the real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragbridge.errors import Conflict, InvalidRequest
from ragbridge.service.api_keys import KEY_PREFIX, create_key, generate_key, hash_key
from ragbridge.store.sqlite import SqliteStore
from tests.support.stores import opened

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(SqliteStore(tmp_path / "ragbridge.db")) as store:
        yield store


def test_generated_keys_are_long_random_and_prefixed() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith(KEY_PREFIX) and len(k) == len(KEY_PREFIX) + 43 for k in keys)


async def test_the_store_keeps_only_the_hash(store: SqliteStore, tmp_path: Path) -> None:
    new = await create_key(store, "team-a", collections=["handbook", " faq ", "faq"], rpm=60)
    assert new.record.key_hash == hash_key(new.secret) != new.secret
    assert new.record.collections == ("handbook", "faq")
    found = await store.find_api_key(hash_key(new.secret))
    assert found is not None and found.name == "team-a" and found.rpm == 60 and found.tpm is None
    assert new.secret.encode() not in (tmp_path / "ragbridge.db").read_bytes()


@pytest.mark.parametrize("name", ["", "admin", "anonymous", "has space", "-dash-first", "x" * 65])
async def test_bad_or_reserved_names_are_refused(store: SqliteStore, name: str) -> None:
    with pytest.raises(InvalidRequest):
        await create_key(store, name)


async def test_limits_must_be_positive_and_scope_non_empty(store: SqliteStore) -> None:
    with pytest.raises(InvalidRequest):
        await create_key(store, "k", rpm=0)
    with pytest.raises(InvalidRequest):
        await create_key(store, "k", tpm=-5)
    with pytest.raises(InvalidRequest):
        await create_key(store, "k", collections=[" ", ""])
    assert await store.list_api_keys() == []


async def test_a_live_name_cannot_be_reused_until_revoked(store: SqliteStore) -> None:
    first = await create_key(store, "k")
    with pytest.raises(Conflict):
        await create_key(store, "k")
    assert await store.revoke_api_key("k")
    second = await create_key(store, "k")
    assert await store.find_api_key(hash_key(first.secret)) is None
    assert await store.find_api_key(hash_key(second.secret)) is not None
