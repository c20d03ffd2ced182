"""The `ragbridge` command line: serve, ingest, search, collections, keys, eval, config, migrate,
copy. One module per command group; each goes through the Python API (`ragbridge.open`) where
it touches data, so the CLI and the server are wired the same way."""

from __future__ import annotations

# `server` registers first, so `serve` heads the help
from ragbridge.cli import server

# isort: split
from ragbridge.cli import collections, evaluate, keys
from ragbridge.cli.common import app, load_settings

__all__ = ["app", "collections", "evaluate", "keys", "load_settings", "server"]
