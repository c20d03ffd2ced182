"""Faults on the PostgreSQL store, against a real server (pgserver): PostgreSQL stopped and
restarted under Korean search and chat traffic (each request answers, or fails at once with a
503 in OpenAI's envelope; nothing stored is lost; the pool reconnects by itself), and `kill -9`
of `ragbridge ingest` (every file stored whole or not at all; a re-run completes the collection).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from ragbridge.settings import Settings
from tests.faults.test_ingest_faults import COLLECTION, interrupt_midway, rerun_completes
from tests.support.postgres import PostgresForTests
from tests.support.upstream import ScriptedUpstream, gateway_settings

pytestmark = pytest.mark.postgres

PASSAGES = {
    "한라산.txt": "한라산은 제주도에 있는 산으로 높이는 1947미터입니다. 정상에 백록담이 있습니다.",
    "경복궁.txt": "경복궁은 1395년에 창건된 조선 왕조의 법궁입니다. 근정전이 중심 건물입니다.",
    "부산.txt": "부산은 대한민국 제2의 도시이며 해운대 해수욕장과 자갈치 시장으로 유명합니다.",
    "세종.txt": "세종대왕은 1443년에 훈민정음을 창제하였고 집현전 학자들과 함께 반포하였습니다.",
}
QUESTIONS = ["한라산의 높이는 몇 미터인가요?", "경복궁은 언제 창건되었나요?"]
WAIT_S = 1.0  # RAGBRIDGE_DATABASE_WAIT_TIMEOUT: how long a request waits for a connection
HANG_S = 5.0  # slower than this while the database is down counts as a hang


@dataclass
class Call:
    kind: str
    status: int  # 0: no HTTP answer at all
    enveloped: bool  # an error body in OpenAI's envelope (or a 200)
    seconds: float
    at: float


def call(client: httpx.Client, kind: str, question: str) -> Call:
    started = time.monotonic()
    if kind == "search":
        request = {"collection": COLLECTION, "query": question, "top_k": 2}
        path = "/v1/search"
    else:
        message = {"role": "user", "content": question}
        request = {"model": f"rag/{COLLECTION}", "messages": [message]}
        path = "/v1/chat/completions"
    try:
        response = client.post(path, json=request)
    except httpx.HTTPError:
        return Call(kind, 0, False, time.monotonic() - started, time.monotonic())
    body = response.json()
    enveloped = response.status_code == 200 or bool(body.get("error", {}).get("message"))
    return Call(kind, response.status_code, enveloped, time.monotonic() - started, time.monotonic())


def traffic(client: httpx.Client, count: int) -> list[Call]:
    """`count` requests, search and chat in turn, each a Korean question."""
    return [
        call(client, ("search", "chat")[i % 2], QUESTIONS[i % len(QUESTIONS)]) for i in range(count)
    ]


def stored(url: str) -> dict[str, tuple[int, int, int]]:
    """Per document source: (claimed chunks, chunks held, chunks with a vector)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.source, d.chunk_count, count(c.id), count(c.embedding)"
            " FROM documents d LEFT JOIN chunks c"
            " ON c.collection_id = d.collection_id AND c.document_id = d.id"
            " GROUP BY d.collection_id, d.id, d.source, d.chunk_count"
        ).fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d"
            " WHERE d.collection_id = c.collection_id AND d.id = c.document_id)"
        ).fetchone()
        totals = conn.execute(
            "SELECT coalesce(sum(document_count), 0), coalesce(sum(chunk_count), 0)"
            " FROM collections"
        ).fetchone()
    assert orphans is not None and orphans[0] == 0, "chunks without their document"
    state = {str(source): (int(a), int(b), int(c)) for source, a, b, c in rows}
    half = {s: v for s, v in state.items() if not v[0] == v[1] == v[2]}
    assert half == {}, f"documents not stored whole (claimed, held, with vector): {half}"
    assert totals is not None
    assert (int(totals[0]), int(totals[1])) == (len(state), sum(v[1] for v in state.values()))
    return state


def test_postgres_restarted_mid_traffic(
    upstream: ScriptedUpstream,
    postgres_server: PostgresForTests,
    postgres_url: str,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    record_fault: Callable[..., None],
) -> None:
    if not postgres_server.restartable:
        pytest.skip("RAGBRIDGE_DATABASE_URL's server is not ours to restart")
    settings = make_settings(
        **gateway_settings(
            upstream,
            database_url=postgres_url,
            embedding_base_url=upstream.url,
            embedding_model="stub-embed",
            response_cache=False,
            database_wait_timeout=WAIT_S,
        )
    )
    with serve_app(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        for name, text in PASSAGES.items():
            files = {"file": (name, text.encode(), "text/plain")}
            added = client.post(f"/v1/collections/{COLLECTION}/documents", files=files)
            assert added.status_code == 201, added.text
        before_state = stored(postgres_url)
        before = traffic(client, 4)
        postgres_server.stop()
        during = traffic(client, 4)
        restart = time.monotonic()
        postgres_server.start()
        back = time.monotonic()
        after = traffic(client, 10)
        listed = client.get(f"/v1/collections/{COLLECTION}/documents")
    calls = before + during + after
    assert all(c.status == 200 for c in before)
    wrong = [c for c in calls if c.status not in (200, 503) or not c.enveloped]
    assert wrong == [], f"answers other than 200 or an enveloped 503: {wrong}"
    slow = [c for c in during if c.seconds > HANG_S]
    assert slow == [], f"requests that hung while the database was down: {slow}"
    assert all(c.status == 503 for c in during)  # the store is the only way to these answers
    first_ok = next((c for c in after if c.status == 200), None)
    assert first_ok is not None, "never recovered"
    assert all(c.status == 200 for c in after[after.index(first_ok) :]), after
    after_state = stored(postgres_url)
    lost = len(set(before_state.items()) - set(after_state.items()))
    assert lost == 0 and after_state == before_state
    assert listed.status_code == 200
    assert sorted(d["source"] for d in listed.json()["data"]) == sorted(PASSAGES)
    failed = sum(c.status != 200 for c in calls)
    recovered = first_ok.at - back
    record_fault(
        "PostgreSQL stopped and restarted mid-traffic",
        requests=len(calls),
        failed=failed,
        lost=lost,
        recover_s=recovered,
        note=f"503 in {max(c.seconds for c in during):.2f} s at most while it was down "
        f"({len(during)} requests, {back - restart:.1f} s to restart); "
        f"{sum(c.status != 200 for c in after)} failed after it was back",
    )


def test_kill_9_during_ingest_on_postgres(
    upstream: ScriptedUpstream,
    postgres_url: str,
    tmp_path: Path,
    record_fault: Callable[..., None],
) -> None:
    interrupted = interrupt_midway(
        upstream,
        tmp_path,
        signal.SIGKILL,
        database_url=postgres_url,
        committed=lambda: documents_in(postgres_url),
    )
    # every document whole (chunks and vectors), no orphan chunk, counters agree
    rerun_completes(
        upstream, interrupted, tmp_path, lambda: len(stored(postgres_url)), record_fault, "postgres"
    )


def documents_in(url: str) -> int:
    """Documents committed so far (0 before the ingest created its tables); polled gently."""
    time.sleep(0.1)
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM documents").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0
