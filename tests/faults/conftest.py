"""The fault suite's table: each fault test records one row (requests failed, data lost, time to
recover); the table is printed at the end of the run and, with `RAGBRIDGE_FAULTS_TABLE=path`,
written there as Markdown (docs/faults.md embeds it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragbridge.settings import Settings
from tests.support.server import serve_in_thread


@dataclass
class FaultRow:
    fault: str
    requests: int
    failed: int
    lost: int
    recover_s: float | None
    note: str = ""


ROWS: list[FaultRow] = []


def table() -> str:
    lines = [
        "| fault | requests | failed | data lost | time to recover | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in ROWS:
        recover = "-" if row.recover_s is None else f"{row.recover_s:.2f} s"
        lines.append(
            f"| {row.fault} | {row.requests} | {row.failed} | {row.lost} | {recover} | {row.note} |"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def record_fault() -> Callable[..., None]:
    """`record_fault(fault, requests=, failed=, lost=, recover_s=, note=)`: one table row."""

    def record(
        fault: str,
        *,
        requests: int,
        failed: int,
        lost: int,
        recover_s: float | None,
        note: str = "",
    ) -> None:
        ROWS.append(FaultRow(fault, requests, failed, lost, recover_s, note))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    terminalreporter.section("fault table")
    terminalreporter.write(table())
    if target := os.environ.get("RAGBRIDGE_FAULTS_TABLE"):
        Path(target).write_text(table(), encoding="utf-8")


@pytest.fixture
def serve_like_cli() -> Callable[[Settings], Iterator[str]]:
    """`with serve_like_cli(settings) as url:` the app under `ragbridge serve`'s uvicorn config."""
    from contextlib import contextmanager

    from ragbridge.api.shutdown import server_config
    from ragbridge.app import create_app

    @contextmanager
    def serve(settings: Settings) -> Iterator[str]:
        app = create_app(settings)
        with serve_in_thread(app, config=server_config(app, settings)) as url:
            yield url

    return serve  # type: ignore[return-value]
