"""PostgreSQL schema migrations: applied once, atomically, safe when replicas start together."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import psycopg
import pytest

from ragbridge.store.pg_migrations import MIGRATIONS, Migration, applied_versions, migrate
from ragbridge.store.postgres import PostgresStore
from tests.support.cli import ragbridge_command

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

LATEST = max(m.version for m in MIGRATIONS)


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def table_names(url: str) -> set[str]:
    async with await connect(url) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {row[0] for row in await cur.fetchall()}


async def test_fresh_database_gets_every_migration_once(postgres_url: str) -> None:
    async with await connect(postgres_url) as conn:
        assert await applied_versions(conn) == set()
        assert await migrate(conn) == [m.version for m in MIGRATIONS]
        assert await migrate(conn) == []
        assert await applied_versions(conn) == {m.version for m in MIGRATIONS}
    assert {"collections", "documents", "chunks", "api_keys", "schema_migrations"} <= (
        await table_names(postgres_url)
    )


async def test_replicas_migrating_at_once_apply_each_step_once(postgres_url: str) -> None:
    async def one_replica() -> list[int]:
        async with await connect(postgres_url) as conn:
            return await migrate(conn)

    results = await asyncio.gather(*(one_replica() for _ in range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in MIGRATIONS]
    async with await connect(postgres_url) as conn:
        cur = await conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY 1")
        assert {row[0]: row[1] for row in await cur.fetchall()} == {
            m.version: 1 for m in MIGRATIONS
        }


async def test_a_failing_migration_leaves_no_trace(postgres_url: str) -> None:
    broken = Migration(LATEST + 1, "broken", "CREATE TABLE half_done (x int); SELECT 1/0;")
    async with await connect(postgres_url) as conn:
        await migrate(conn)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await migrate(conn, (*MIGRATIONS, broken))
        assert LATEST + 1 not in await applied_versions(conn)
        # The advisory lock was released: another session can migrate right away.
        async with await connect(postgres_url) as other:
            assert await asyncio.wait_for(migrate(other), timeout=10) == []
    assert "half_done" not in await table_names(postgres_url)


async def test_migrate_refuses_a_connection_inside_a_transaction(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        with pytest.raises(ValueError, match="autocommit"):
            await migrate(conn)


async def test_store_open_migrates_and_reopens(postgres_url: str) -> None:
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await asyncio.gather(first.open(), second.open())
    try:
        await first.create_collection("docs", "model", 3)
        assert [c.name for c in await second.list_collections()] == ["docs"]
    finally:
        await first.close()
        await second.close()


def test_cli_migrate_from_two_processes_at_once(postgres_url: str) -> None:
    env = {**os.environ, "RAGBRIDGE_DATABASE_URL": postgres_url}
    command = ragbridge_command("migrate")
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sum(f"applied migration {LATEST}" in out for out in outputs) == 1, outputs
    assert all(f"schema at version {LATEST}" in out for out in outputs), outputs
