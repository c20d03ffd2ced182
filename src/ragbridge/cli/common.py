"""What every `ragbridge` command shares: the Typer app, settings from env and flags, and
running one action on an opened `Ragbridge` (the Python API the server uses too)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ragbridge.errors import RagbridgeError
from ragbridge.settings import Settings

if TYPE_CHECKING:
    from ragbridge.bridge import Ragbridge

# OpenMP (torch) reads these when it loads: busy-waiting threads turned a 7 ms query into 400 ms
# on a 2-core machine. Defaults only; the operator's environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

T = TypeVar("T")

app = typer.Typer(
    help="Self-hosted RAG server with an OpenAI-compatible API.", no_args_is_help=True
)
DataDirOption = Annotated[Path | None, typer.Option(help="Embedded store directory.")]


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and `.env`, with CLI flags (non-None overrides) on top; a bad setting
    stops the command with one line naming it (no traceback)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from ragbridge.config_file import settings_error

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, SettingsError) as exc:
        raise fail(settings_error(exc), 2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def on_ragbridge(
    action: Callable[[Ragbridge], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run `action` on a `Ragbridge` opened for `settings` (default: env and `.env`); a
    ragbridge error ends the command with its message and exit code 1."""
    from ragbridge.bridge import open as open_ragbridge

    async def run() -> T:
        async with open_ragbridge(settings or load_settings()) as bridge:
            return await action(bridge)

    try:
        return asyncio.run(run())
    except RagbridgeError as exc:
        raise fail(exc.message) from None
