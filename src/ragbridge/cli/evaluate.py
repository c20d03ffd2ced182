"""`ragbridge eval`: retrieval quality per mode on a BEIR folder or an existing collection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ragbridge.cli.common import DataDirOption, app, fail, load_settings
from ragbridge.errors import RagbridgeError


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
        raise fail(f"unknown mode {bad[0]!r} (keyword, dense, hybrid)", 2)
    try:
        if collection is not None:
            if queries is None or qrels is None:
                raise fail("--collection needs --queries and --qrels", 2)
            data = evaluation.pair(evaluation.load_queries(queries), evaluation.load_qrels(qrels))
        elif folder is not None:
            data = evaluation.load_beir(folder, split)
        else:
            raise fail("give a BEIR folder, or --collection with --queries and --qrels", 2)
        console = Console(stderr=True)
        with Progress(console=console, transient=True) as bar:

            def track(label: str, total: int) -> Callable[[int], None]:
                task = bar.add_task(label, total=total)
                return lambda done: bar.advance(task, done)

            results = asyncio.run(
                evaluation.run_evaluation(settings, data, collection, chosen, track)  # type: ignore[arg-type]
            )
    except (RagbridgeError, ValueError) as exc:  # ValueError: also a bad evaluation file
        raise fail(str(getattr(exc, "message", exc))) from None
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
