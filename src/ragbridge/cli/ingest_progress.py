"""`ragbridge ingest` on a terminal: a progress bar, then a summary with each failure's reason.
SIGTERM/SIGINT abandon the files in progress (each store write is a transaction), summarise the
rest and exit 143/130; the same command again skips what is stored and finishes the job."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ragbridge.bridge import open as open_ragbridge
from ragbridge.errors import RagbridgeError
from ragbridge.ingest.files import discover
from ragbridge.ingest.loaders import supported_extensions
from ragbridge.ingest.results import IngestResult
from ragbridge.settings import Settings

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RatesColumn(ProgressColumn):
    """Files per second, chunks so far and chunks per second."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        chunks = int(task.fields.get("chunks", 0))
        if elapsed <= 0:
            return Text("")
        return Text(
            f"{task.completed / elapsed:.1f} files/s  {chunks} chunks  "
            f"{chunks / elapsed:.1f} chunks/s",
            style="progress.data.speed",
        )


class ProgressBar:
    """`IngestProgress` that drives a rich progress task."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("Ingesting", total=total, chunks=0)
        self.chunks = 0
        self.done: list[IngestResult] = []

    def chunks_embedded(self, count: int) -> None:
        self.chunks += count
        self.progress.update(self.task, chunks=self.chunks)

    def file_done(self, result: IngestResult) -> None:
        self.done.append(result)
        self.progress.advance(self.task)


async def run_ingest(
    settings: Settings, collection: str, paths: Sequence[Path], console: Console
) -> int:
    """Ingest `paths` into `collection`, show progress and a summary; the exit code is 1 when
    any file failed or nothing could be ingested."""
    try:
        found = discover(paths)  # loader plugins load here: a broken one is one clear line
        print_skipped(console, found.skipped)
        # The summary reports each file's parser warnings; without logging set up, the
        # pipeline's log lines would print a second time through Python's last-resort handler.
        logging.getLogger("ragbridge.ingest").addHandler(logging.NullHandler())
        if not found.files:
            console.print("[red]No files to ingest.[/red]")
            return 1
        started = time.perf_counter()
        async with open_ragbridge(settings) as bridge:
            with Progress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RatesColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as progress:
                bar = ProgressBar(progress, total=len(found.files))
                work = asyncio.ensure_future(
                    bridge.pipeline.ingest_files(collection, found.files, progress=bar)
                )
                with _stop_on_signals(work) as stopped:
                    try:
                        results = await work
                    except asyncio.CancelledError:
                        if not stopped:
                            raise
                        results = bar.done
    except RagbridgeError as exc:
        console.print(f"[red]Error:[/red] {escape(exc.message)}")
        return 1
    print_summary(console, collection, results, time.perf_counter() - started)
    if stopped:
        console.print(
            f"[yellow]Stopped by {signal.Signals(stopped[0]).name}[/yellow] after {len(results)} "
            f"of {len(found.files)} files; run the same command again to ingest the rest."
        )
        return 128 + stopped[0]
    return 1 if any(result.status == "failed" for result in results) else 0


def print_skipped(console: Console, skipped: Sequence[Path]) -> None:
    """`Skipped N file(s):` and each one with the reason."""
    if not skipped:
        return
    supported = supported_extensions()
    console.print(f"Skipped {len(skipped)} file(s):", soft_wrap=True)
    for path in skipped:
        kind = path.suffix.lower() or "(no extension)"
        console.print(
            f"  [dim]skipped[/dim] {escape(str(path))}: {escape(kind)} files are not a supported "
            f"type ({escape(supported)})",
            soft_wrap=True,
        )


@contextmanager
def _stop_on_signals(work: asyncio.Future[Any]) -> Iterator[list[int]]:
    """While active, SIGTERM and SIGINT cancel `work`; the list holds the signal that did."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            work.cancel()

    for signum in _SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        yield received
    finally:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)


def print_summary(
    console: Console, collection: str, results: Sequence[IngestResult], seconds: float
) -> None:
    """One line of counts, then one line per failed file with its reason."""
    counts = Counter(result.status for result in results)
    chunks = sum(result.chunks for result in results)
    rate = chunks / seconds if seconds > 0 else 0.0
    console.print(
        f"Collection [bold]{escape(collection)}[/bold]: "
        f"[green]{counts['added']} added[/green], [cyan]{counts['updated']} updated[/cyan], "
        f"{counts['unchanged']} unchanged, "
        f"[{'red' if counts['failed'] else 'default'}]{counts['failed']} failed[/], "
        f"{chunks} chunks embedded in {seconds:.1f} s ({rate:.1f} chunks/s)",
        soft_wrap=True,
    )
    for result in results:
        if result.status == "failed":
            reason = escape(result.error or "")
            console.print(f"  [red]failed[/red] {escape(result.source)}: {reason}", soft_wrap=True)
        elif result.warning:
            warning = escape(result.warning)
            console.print(
                f"  [yellow]warning[/yellow] {escape(result.source)}: {warning}", soft_wrap=True
            )
