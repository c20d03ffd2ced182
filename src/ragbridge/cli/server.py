"""`ragbridge serve`, `config`, and scale-out: `migrate` (PostgreSQL schema) and `copy`
(collections between stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from ragbridge.cli.common import DataDirOption, app, fail, load_settings
from ragbridge.errors import RagbridgeError


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
    data_dir: DataDirOption = None,
    local_model: Annotated[
        Path | None, typer.Option(help="GGUF model to serve in-process (local-llm extra).")
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    from ragbridge.llm.local import LocalModelUnavailable, local_model_problem

    settings = load_settings(host=host, port=port, data_dir=data_dir, local_model=local_model)
    if settings.local_model is not None and (problem := local_model_problem(settings.local_model)):
        raise fail(problem, 2)  # before the heavy imports: fails fast

    from ragbridge.api.security import UnsafeBindError
    from ragbridge.api.shutdown import run_server
    from ragbridge.app import create_app

    try:
        application = create_app(settings)
    except (UnsafeBindError, LocalModelUnavailable) as exc:
        raise fail(str(exc), 2) from None
    run_server(application, settings)


@app.command()
def config(
    sample: Annotated[bool, typer.Option("--sample", help="Print a documented .env.")] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Include API keys (left out by default).")
    ] = False,
) -> None:
    """Print the effective configuration as a `.env` that loads back, or a documented sample."""
    from ragbridge.config_file import env_text, sample_env

    if sample:
        typer.echo(sample_env())
        return
    typer.echo(env_text(load_settings(), show_secrets=show_secrets))


# --- scale-out: PostgreSQL schema and copying between stores ---------------------------------
@app.command()
def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="postgresql:// URL; default RAGBRIDGE_DATABASE_URL.")
    ] = None,
) -> None:
    """Create or upgrade the PostgreSQL schema (safe while other replicas start or run)."""
    import psycopg

    from ragbridge.store.pg_migrations import MIGRATIONS, applied_versions
    from ragbridge.store.pg_migrations import migrate as apply_migrations

    url = load_settings(database_url=database_url).database_url
    if not url:
        raise fail("set RAGBRIDGE_DATABASE_URL or pass --database-url", 2)

    async def run() -> tuple[list[int], set[int]]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await apply_migrations(conn), await applied_versions(conn)

    try:
        applied, versions = asyncio.run(run())
    except psycopg.Error as exc:
        raise fail(str(exc)) from None
    names = {m.version: m.name for m in MIGRATIONS}
    for version in applied:
        typer.echo(f"applied migration {version}: {names[version]}")
    typer.echo(f"schema at version {max(versions)}" + ("" if applied else " (up to date)"))


@app.command("copy")
def copy_collections(
    source: Annotated[
        str, typer.Option("--from", help="sqlite, postgres, a data dir or a postgresql:// URL.")
    ],
    target: Annotated[
        str, typer.Option("--to", help="sqlite, postgres, a data dir or a postgresql:// URL.")
    ],
    collection: Annotated[
        list[str] | None, typer.Option("--collection", "-c", help="Copy only these (repeat).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace target collections that already hold documents.")
    ] = False,
) -> None:
    """Copy collections between stores as stored (no re-embedding), verifying the counts."""
    from ragbridge.store.transfer import copy_stores

    settings = load_settings()
    try:
        copied = asyncio.run(
            copy_stores(
                source,
                target,
                settings,
                collections=collection or (),
                overwrite=overwrite,
                report=typer.echo,
            )
        )
    except RagbridgeError as exc:
        raise fail(exc.message) from None
    if not copied:
        typer.echo("nothing to copy: the source has no collections")
