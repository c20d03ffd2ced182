"""A real PostgreSQL with pgvector for the tests: started from the `pgserver` package (or taken from
RAGBRIDGE_DATABASE_URL), one fresh schema per test so tests never see each other's rows."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql


class PostgresForTests:
    """One server for the test session; `fresh_schema()` gives each test its own schema."""

    def __init__(self, admin_url: str, server: Any = None) -> None:
        self.admin_url = admin_url
        self._server = server  # pgserver's handle, when we started the server ourselves
        self._counter = itertools.count()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def schema_url(self, schema: str) -> str:
        """A URL whose connections see `schema` first, then `public` (where `vector` lives)."""
        separator = "&" if "?" in self.admin_url else "?"
        options = quote(f"-c search_path={schema},public", safe="")
        return f"{self.admin_url}{separator}options={options}"

    @property
    def restartable(self) -> bool:
        """Whether `stop()`/`start()` work (only on a server pgserver started for the tests)."""
        return self._server is not None

    def stop(self) -> None:
        """Stop the server at once: SIGINT to the postmaster is PostgreSQL's fast shutdown (open
        sessions are terminated); returns once the postmaster has exited."""
        pid = self._server.get_pid()
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise TimeoutError(f"PostgreSQL (pid {pid}) did not stop within 30 s")

    def start(self) -> None:
        """Start it again on the same data dir and socket; returns once it accepts connections."""
        self._server.ensure_postgres_running()

    @contextmanager
    def fresh_schema(self) -> Iterator[str]:
        """A new empty schema for one test, dropped afterwards; yields its URL."""
        schema = f"rbtest_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield self.schema_url(schema)
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def running_postgres(url: str | None = None) -> Iterator[PostgresForTests]:
    """The server at `url`, or one started by pgserver, stopped and deleted at exit.

    pgserver's data dir is not under pytest's tmp dir: as root, pgserver runs the server as
    another OS user, and pytest keeps resetting its own tmp root to mode 0700.
    """
    if url:
        yield PostgresForTests(url)
        return
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

    parent = Path(tempfile.mkdtemp(prefix="ragbridge-pg-"))
    server = pgserver.get_server(parent / "data", cleanup_mode="delete")
    try:
        yield PostgresForTests(server.get_uri(), server)
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)
