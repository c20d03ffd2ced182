"""The `ragbridge` command line: serve, ingest, search, collections, config."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ragbridge.errors import RagbridgeError
from ragbridge.settings import RetrievalMode, Settings, sample_env
from ragbridge.store import Store, open_store
from ragbridge.store.base import SearchHit

# OpenMP (torch) reads these when it loads: busy-waiting threads turned a 7 ms query into 400 ms
# on a 2-core machine. Defaults only; the operator's environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

T = TypeVar("T")

app = typer.Typer(
    help="Self-hosted RAG server with an OpenAI-compatible API.", no_args_is_help=True
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and `.env`, with CLI flags (non-None overrides) on top; a bad setting
    stops the command with one line naming it (no traceback)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from ragbridge.config_file import settings_error

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, SettingsError) as exc:
        typer.echo(f"error: {settings_error(exc)}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded store directory.")] = None,
    local_model: Annotated[
        Path | None, typer.Option(help="GGUF model to serve in-process (local-llm extra).")
    ] = None,
) -> None:
    """Serve the OpenAI-compatible API."""
    from ragbridge.llm.local import LocalModelUnavailable, local_model_problem

    settings = load_settings(host=host, port=port, data_dir=data_dir, local_model=local_model)
    if settings.local_model is not None and (problem := local_model_problem(settings.local_model)):
        typer.echo(f"error: {problem}", err=True)  # before the heavy imports: fails fast
        raise typer.Exit(2)

    from ragbridge.api.security import UnsafeBindError
    from ragbridge.api.shutdown import run_server
    from ragbridge.app import create_app

    try:
        application = create_app(settings)
    except (UnsafeBindError, LocalModelUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    run_server(application, settings)


@app.command()
def config(
    sample: Annotated[bool, typer.Option("--sample", help="Print a documented .env.")] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Include API keys (left out by default).")
    ] = False,
) -> None:
    """Print the effective configuration as a `.env` that loads back, or a documented sample."""
    from ragbridge.config_file import env_text

    if sample:
        typer.echo(sample_env())
        return
    typer.echo(env_text(load_settings(), show_secrets=show_secrets))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (read recursively).")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Target collection.")],
    data_dir: Annotated[Path | None, typer.Option(help="Embedded store directory.")] = None,
) -> None:
    """Ingest documents into a collection (created if new); unchanged files are skipped."""
    from rich.console import Console

    from ragbridge.ingest.console import run_ingest

    settings = load_settings(data_dir=data_dir)
    code = asyncio.run(run_ingest(settings, collection, paths, Console()))
    raise typer.Exit(code)


# --- collections and search -----------------------------------------------------------------
collections_app = typer.Typer(help="List and delete collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
DataDirOption = Annotated[Path | None, typer.Option(help="Embedded store directory.")]


@collections_app.command("list")
def collections_list(data_dir: DataDirOption = None) -> None:
    """List collections with their embedding model and sizes."""
    infos = _on_store(lambda store: store.list_collections(), load_settings(data_dir=data_dir))
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
    if not _on_store(lambda store: store.delete_collection(name), load_settings(data_dir=data_dir)):
        typer.echo(f"error: no collection named '{name}'.", err=True)
        raise typer.Exit(1)
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
    from ragbridge.embeddings import create_embedder
    from ragbridge.retrieval.hybrid import FusionConfig, HybridRetriever
    from ragbridge.retrieval.rerank import create_reranker

    settings = load_settings(data_dir=data_dir, top_k=top_k, retrieval_mode=mode)

    async def run(store: Store) -> list[SearchHit]:
        embedder = create_embedder(settings)
        reranker = create_reranker(settings)
        try:
            config = FusionConfig.from_settings(settings)
            retriever = HybridRetriever(store, embedder, reranker=reranker, config=config)
            return await retriever.search(
                collection,
                query,
                top_k=settings.top_k,
                mode=settings.retrieval_mode,
                score_threshold=settings.score_threshold,
            )
        finally:
            if reranker is not None:
                await reranker.close()
            await embedder.close()

    hits = _on_store(run, settings)
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


@app.command("eval")
def evaluate(
    folder: Annotated[
        Path | None, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/*.tsv.")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Evaluate this existing collection.")
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="Queries JSONL (with --collection).")] = None,
    qrels: Annotated[Path | None, typer.Option(help="Qrels TSV (with --collection).")] = None,
    split: Annotated[str | None, typer.Option(help="qrels/<split>.tsv in a BEIR folder.")] = None,
    modes: Annotated[
        list[str] | None, typer.Option("--mode", help="Modes to run; default all three.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Retrieval quality per mode: nDCG@10, Recall@100, MRR@10 and latency p50/p95."""
    import dataclasses
    import json

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ragbridge import evaluation

    settings = load_settings(data_dir=data_dir)
    chosen = modes or ["keyword", "dense", "hybrid"]
    if bad := [m for m in chosen if m not in ("keyword", "dense", "hybrid")]:
        typer.echo(f"error: unknown mode {bad[0]!r} (keyword, dense, hybrid)", err=True)
        raise typer.Exit(2)
    try:
        if collection is not None:
            if queries is None or qrels is None:
                typer.echo("error: --collection needs --queries and --qrels", err=True)
                raise typer.Exit(2)
            data = evaluation.pair(evaluation.load_queries(queries), evaluation.load_qrels(qrels))
        elif folder is not None:
            data = evaluation.load_beir(folder, split)
        else:
            typer.echo("error: give a BEIR folder, or --collection with --queries and --qrels",
                       err=True)  # fmt: skip
            raise typer.Exit(2)
        console = Console(stderr=True)
        with Progress(console=console, transient=True) as bar:

            def track(label: str, total: int) -> Callable[[int], None]:
                task = bar.add_task(label, total=total)
                return lambda done: bar.advance(task, done)

            results = asyncio.run(
                evaluation.run_evaluation(settings, data, collection, chosen, track)  # type: ignore[arg-type]
            )
    except evaluation.EvalDataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (RagbridgeError, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        rows = [dataclasses.asdict(r) for r in results]
        typer.echo(json.dumps({"queries": len(data.queries), "results": rows}, indent=2))
        return
    table = Table(title=f"{len(data.queries)} queries, embedder {settings.embedding_model}")
    for name in ("mode", "nDCG@10", "Recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for r in results:
        table.add_row(
            r.mode, f"{r.ndcg10:.4f}", f"{r.recall100:.4f}", f"{r.mrr10:.4f}",
            f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}",
        )  # fmt: skip
    Console().print(table)


# --- keys -----------------------------------------------------------------------------------
keys_app = typer.Typer(help="API keys: stored hashed, each shown once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _on_store(action: Callable[[Store], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `action` on the configured store (RAGBRIDGE_DATA_DIR / RAGBRIDGE_DATABASE_URL)."""

    async def run() -> T:
        store = await open_store(settings or load_settings())
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except RagbridgeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


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
    from ragbridge.service.api_keys import create_key

    scope = collections.split(",") if collections is not None else None
    new = _on_store(lambda store: create_key(store, name, collections=scope, rpm=rpm, tpm=tpm))
    record = new.record
    typer.echo(f"Created key '{record.name}'")
    typer.echo(f"  collections: {', '.join(record.collections or ()) or 'all'}")
    typer.echo(f"  limits: rpm={record.rpm or 'none'} tpm={record.tpm or 'none'}")
    typer.echo("Store it now; it is not shown again:")
    typer.echo(new.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (names, scope, limits; never the keys or their hashes)."""
    records = _on_store(lambda store: store.list_api_keys())
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
    if not _on_store(lambda store: store.revoke_api_key(name)):
        typer.echo(f"error: no live API key named '{name}'.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked key '{name}'.")


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
        typer.echo("error: set RAGBRIDGE_DATABASE_URL or pass --database-url", err=True)
        raise typer.Exit(2)

    async def run() -> tuple[list[int], set[int]]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await apply_migrations(conn), await applied_versions(conn)

    try:
        applied, versions = asyncio.run(run())
    except psycopg.Error as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
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
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if not copied:
        typer.echo("nothing to copy: the source has no collections")
