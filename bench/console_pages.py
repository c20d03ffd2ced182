"""Console page times with 1,000 documents in a collection, next to the JSON API for the same data.

    python -m bench.console_pages                 # 1000 documents, 40 requests per page
    python -m bench.console_pages --documents 5000 --requests 20

Each page is requested in-process through the ASGI app (`httpx.ASGITransport`: no sockets, so
the time is the server's: routing, auth, store reads, Jinja2 rendering). The baseline is the
`/v1` JSON route that reads the same data, measured in the same run. Documents are written
straight through `Store.upsert_document` with random unit vectors (3 chunks each, Korean and
English text), as ingest would write them, so no embedding time is spent filling.

Also prints the page weight: the HTML of each page and the console's static files (gzip), to
compare with a client-rendered alternative (a JSON API plus a JavaScript framework bundle).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from ragbridge.app import create_app
from ragbridge.console import STATIC
from ragbridge.retrieval.analyzer import analyze
from ragbridge.settings import Settings
from ragbridge.store.base import DocumentRecord, NewChunk, Store

COLLECTION = "bench"
TEXTS = [
    "한라산은 제주도에 있으며 높이는 1,947미터로 남한에서 가장 높은 산입니다.",
    "재택근무 신청은 팀장 승인 후 인사 시스템에서 매월 말일까지 제출합니다.",
    "The Aurora valve must be inspected every 90 days by a certified technician.",
    "Expense reports are filed within 30 days with receipts attached as PDF files.",
]


async def fill(store: Store, model: str, dimension: int, documents: int) -> str:
    """`documents` documents of 3 chunks each; returns one document id."""
    await store.create_collection(COLLECTION, model, dimension)
    rng = np.random.default_rng(7)
    first = ""
    for index in range(documents):
        chunks = []
        for position in range(3):
            text = f"{TEXTS[(index + position) % len(TEXTS)]} (문서 {index}, part {position})"
            chunks.append(
                NewChunk(
                    text,
                    " ".join(analyze(text)),
                    position,
                    {
                        "source": f"doc-{index:05d}.md",
                        "name": f"doc-{index:05d}.md",
                        "page": position,
                    },
                )
            )
        vectors = rng.standard_normal((3, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        doc_id = f"{index:032x}"
        first = first or doc_id
        record = DocumentRecord(
            doc_id,
            COLLECTION,
            f"doc-{index:05d}.md",
            f"hash{index}",
            title=f"Document {index}",
            metadata={"format": "markdown"},
        )
        await store.upsert_document(record, chunks, vectors)
    return first


async def measure(
    client: httpx.AsyncClient, method: str, url: str, count: int, **kw: object
) -> tuple[float, float, int]:
    """p50 and p95 milliseconds of `count` requests (after 3 warm-ups), and the body size."""
    size = 0
    for _ in range(3):
        response = await client.request(method, url, **kw)  # type: ignore[arg-type]
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        size = len(response.content)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.request(method, url, **kw)  # type: ignore[arg-type]
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], size


async def run(documents: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), sample_collection=False, log_level="WARNING")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            embedder, store = app.state.ragbridge.embedder, app.state.ragbridge.store
            started = time.perf_counter()
            doc_id = await fill(store, embedder.name, embedder.dimension, documents)
            print(f"filled {documents} documents in {time.perf_counter() - started:.1f} s\n")
            await embedder.embed_query("warm up")  # a running server has its model loaded
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                search = {"collection": COLLECTION, "query": "한라산 높이", "mode": "keyword"}
                pairs = [
                    (
                        "collections list",
                        ("GET", "/collections", {}),
                        ("GET", "/v1/collections", {}),
                    ),
                    (
                        "documents, page 1 (full page)",
                        ("GET", f"/collections/{COLLECTION}", {}),
                        ("GET", f"/v1/collections/{COLLECTION}/documents", {}),
                    ),
                    (
                        "documents, page 10 (htmx fragment)",
                        (
                            "GET",
                            f"/collections/{COLLECTION}?page=10",
                            {"headers": {"HX-Request": "true"}},
                        ),
                        ("GET", f"/v1/collections/{COLLECTION}/documents", {}),
                    ),
                    (
                        "document view (3 chunks)",
                        ("GET", f"/collections/{COLLECTION}/documents/{doc_id}", {}),
                        ("GET", f"/v1/collections/{COLLECTION}", {}),
                    ),
                    (
                        "search results, keyword, Korean",
                        ("GET", "/search/results", {"params": {**search, "top_k": 10}}),
                        ("POST", "/v1/search", {"json": {**search, "top_k": 10}}),
                    ),
                    ("keys", ("GET", "/keys", {}), ("GET", "/v1/keys", {})),
                    (
                        "status (probes store+embedder)",
                        ("GET", "/status", {}),
                        ("GET", "/ready", {}),
                    ),
                ]
                print(
                    f"| page ({documents} documents) | console p50 / p95 ms | HTML KB "
                    "| JSON API p50 / p95 ms | JSON KB |"
                )
                print("|---|---|---|---|---|")
                for label, (m1, u1, k1), (m2, u2, k2) in pairs:
                    c50, c95, csize = await measure(client, m1, u1, count, **k1)
                    j50, j95, jsize = await measure(client, m2, u2, count, **k2)
                    print(
                        f"| {label} | {c50:.1f} / {c95:.1f} | {csize / 1024:.1f} "
                        f"| {j50:.1f} / {j95:.1f} | {jsize / 1024:.1f} |"
                    )
    print("\nstatic files (loaded once, cached by the browser):")
    for path in sorted(STATIC.iterdir()):
        raw = path.read_bytes()
        packed = len(gzip.compress(raw, 9)) / 1024
        print(f"  {path.name}: {len(raw) / 1024:.1f} KB, gzip {packed:.1f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.documents, args.requests))


if __name__ == "__main__":
    main()
