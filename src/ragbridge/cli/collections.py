"""`ragbridge ingest`, `search` and `collections list|delete`: the data, through the Python API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from ragbridge.cli.common import DataDirOption, app, fail, load_settings, on_ragbridge
from ragbridge.settings import RetrievalMode

collections_app = typer.Typer(help="List and delete collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (read recursively).")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Target collection.")],
    data_dir: DataDirOption = None,
) -> None:
    """Ingest documents into a collection (created if new); unchanged files are skipped."""
    from rich.console import Console

    from ragbridge.cli.ingest_progress import run_ingest

    settings = load_settings(data_dir=data_dir)
    raise typer.Exit(asyncio.run(run_ingest(settings, collection, paths, Console())))


@collections_app.command("list")
def collections_list(data_dir: DataDirOption = None) -> None:
    """List collections with their embedding model and sizes."""
    infos = on_ragbridge(lambda rb: rb.collections(), load_settings(data_dir=data_dir))
    if not infos:
        typer.echo("No collections. Create one with `ragbridge ingest PATH --collection NAME`.")
        return
    typer.echo(f"{'NAME':<24} {'MODEL':<28} {'DIM':>5} {'DOCS':>7} {'CHUNKS':>8}  CREATED")
    for c in infos:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.created_at))
        typer.echo(
            f"{c.name:<24} {c.embedding_model:<28} {c.dimension:>5} {c.document_count:>7} "
            f"{c.chunk_count:>8}  {created}"
        )


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="Collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a collection with all its documents, chunks and vectors."""
    if not yes:
        typer.confirm(f"Delete collection '{name}' and everything in it?", abort=True)
    if not on_ragbridge(lambda rb: rb.delete_collection(name), load_settings(data_dir=data_dir)):
        raise fail(f"no collection named '{name}'.")
    typer.echo(f"Deleted collection '{name}'.")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to search.")],
    top_k: Annotated[
        int | None, typer.Option(help="Passages to show; default RAGBRIDGE_TOP_K.")
    ] = None,
    mode: Annotated[
        RetrievalMode | None, typer.Option(help="hybrid, dense or keyword; default from config.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Search a collection the way the server does, and print the ranked passages."""
    import json

    from ragbridge.api.collections import hit_json

    settings = load_settings(data_dir=data_dir, top_k=top_k, retrieval_mode=mode)
    hits = on_ragbridge(lambda rb: rb.search(collection, query), settings)
    results = [hit_json(rank, hit) for rank, hit in enumerate(hits, start=1)]
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
        return
    if not results:
        typer.echo("No matching passages.")
    for result in results:
        page = result["metadata"].get("page")
        where = f"{result['name']}" + (f", page {page}" if page is not None else "")
        text = " ".join(result["text"].split())
        typer.echo(f"[{result['rank']}] {result['score']:.3f}  {where}")
        typer.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
