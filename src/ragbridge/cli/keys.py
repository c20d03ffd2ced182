"""`ragbridge keys`: create, list and revoke API keys (stored hashed, each shown once)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ragbridge.cli.common import app, fail, on_ragbridge

keys_app = typer.Typer(help="API keys: stored hashed, each shown once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Unique name, shown in logs and metrics.")],
    collections: Annotated[
        str | None, typer.Option(help="Comma-separated collections it may use; default: all.")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute; default: no limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute; default: no limit.")] = None,
) -> None:
    """Create a key. The key is printed once, alone on the last line."""
    scope = collections.split(",") if collections is not None else None
    new = on_ragbridge(lambda rb: rb.create_key(name, collections=scope, rpm=rpm, tpm=tpm))
    record = new.record
    typer.echo(f"Created key '{record.name}'")
    typer.echo(f"  collections: {', '.join(record.collections or ()) or 'all'}")
    typer.echo(f"  limits: rpm={record.rpm or 'none'} tpm={record.tpm or 'none'}")
    typer.echo("Store it now; it is not shown again:")
    typer.echo(new.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (names, scope, limits; never the keys or their hashes)."""
    records = on_ragbridge(lambda rb: rb.keys())
    if not records:
        typer.echo("No API keys. Create one with `ragbridge keys create --name NAME`.")
        return
    typer.echo(f"{'NAME':<24} {'COLLECTIONS':<28} {'RPM':>6} {'TPM':>8}  {'CREATED':<16} STATUS")
    for r in records:
        scope = ",".join(r.collections) if r.collections is not None else "all"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        status = "revoked" if r.revoked else "active"
        typer.echo(
            f"{r.name:<24} {scope:<28} {r.rpm or '-':>6} {r.tpm or '-':>8}  {created:<16} {status}"
        )


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="Name of the key to revoke.")]) -> None:
    """Revoke a key; requests with it are refused at once."""
    if not on_ragbridge(lambda rb: rb.revoke_key(name)):
        raise fail(f"no live API key named '{name}'.")
    typer.echo(f"Revoked key '{name}'.")
