"""The PostgreSQL store's connection pool: each connection is checked before it is handed out,
so a database restart costs no request a 500; while the database is away a request waits at most
`wait_timeout`, then gets a 503 (`ServiceUnavailable`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ragbridge.errors import ServiceUnavailable

Connection = AsyncConnection[dict[str, Any]]

WAIT_TIMEOUT_S = 5.0
"""Longest a request waits for a pooled connection before it is answered 503."""

UNAVAILABLE = "The database is unavailable (restarting or unreachable); try again shortly."


async def _configure(conn: Connection) -> None:
    """Per new connection: pgvector types, and no JIT (its compile time, tens of ms, dwarfs
    these short queries once the planner's estimates pass `jit_above_cost`)."""
    await register_vector_async(conn)
    await conn.execute("SET jit = off")


class StorePool(AsyncConnectionPool[Connection]):
    """An autocommit, dict-row pool whose connection failures surface as `ServiceUnavailable`."""

    def __init__(self, url: str, *, wait_timeout: float = WAIT_TIMEOUT_S) -> None:
        super().__init__(
            url,
            min_size=1,
            max_size=10,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            check=AsyncConnectionPool.check_connection,
            timeout=wait_timeout,
        )

    @asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the signature it overrides
    ) -> AsyncIterator[Connection]:
        """A checked connection; a pool timeout or a lost server raises `ServiceUnavailable`."""
        try:
            async with super().connection(timeout) as conn:
                yield conn
        except psycopg.OperationalError as exc:  # PoolTimeout, AdminShutdown, connection lost
            raise ServiceUnavailable(UNAVAILABLE) from exc
