"""The `ragbridge` command line: serve, ingest, search, collections, config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ragbridge.settings import Settings, sample_env

app = typer.Typer(
    help="Self-hosted RAG server with an OpenAI-compatible API.", no_args_is_help=True
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and `.env`, with CLI flags (non-None overrides) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded store directory.")] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    from ragbridge.app import create_app

    settings = load_settings(host=host, port=port, data_dir=data_dir)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )


@app.command()
def config(
    sample: Annotated[bool, typer.Option("--sample", help="Print a documented .env.")] = False,
) -> None:
    """Show the effective configuration, or a documented sample `.env`."""
    if sample:
        typer.echo(sample_env())
        return
    settings = load_settings()
    for name, value in settings.model_dump(mode="json").items():
        typer.echo(f"RAGBRIDGE_{name.upper()}={value}")
