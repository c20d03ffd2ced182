"""`/health` latency while ragbridge answers a 2 MB Korean chat message and ingests a 50 MB file.

Target (issue 16): `/health` p99 < 50 ms under that load, and the chat answered (or refused
with a clear 4xx) within 30 s. ragbridge runs as `ragbridge serve` in its own process, with the
scripted upstream (tests/support/upstream.py, another process) as its LLM and embedder, so the
figures are ragbridge's own event loop, not a model's. The baseline (no load) is measured in the
same run, first.

    python -m bench.health_under_load                 # 50 MB ingest, 2 MB message, 30 s window
    python -m bench.health_under_load --ingest-mb 5 --seconds 15
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.support.server import ServerProcess, free_port, ragbridge_env, running

SENTENCE = "서울특별시는 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. "


def korean_text(size: int) -> bytes:
    unit = SENTENCE.encode()
    return (unit * (size // len(unit) + 1))[:size].decode("utf-8", "ignore").encode()


def probe(url: str, stop: threading.Event, seconds: list[float], every: float = 0.02) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(f"{url}/health")
            seconds.append(time.perf_counter() - started)
            time.sleep(every)


def stats(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = statistics.quantiles(ms, n=100)[98] if len(ms) >= 2 else ms[0]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {ms[-1]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-mb", type=float, default=50.0)
    parser.add_argument("--message-mb", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window under load")
    args = parser.parse_args()

    upstream_port, port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        env = ragbridge_env(
            Path(tmp) / "data",
            RAGBRIDGE_PORT=str(port),
            RAGBRIDGE_UPSTREAM_BASE_URL=upstream_url,
            RAGBRIDGE_UPSTREAM_MODEL="bench-model",
            RAGBRIDGE_EMBEDDING_BASE_URL=upstream_url,
            RAGBRIDGE_EMBEDDING_MODEL="stub-embed",
            RAGBRIDGE_MAX_UPLOAD_BYTES=str(int(args.ingest_mb * 1024 * 1024) + 1024 * 1024),
            RAGBRIDGE_MAX_REQUEST_BYTES=str(int(args.message_mb * 1024 * 1024) * 2),
            RAGBRIDGE_LOG_LEVEL="WARNING",
        )
        py = sys.executable
        upstream_cmd = [py, "-m", "tests.support.upstream", "--port", str(upstream_port)]
        upstream = ServerProcess(upstream_cmd, upstream_url, env, echo=True)
        server = ServerProcess([py, "-m", "ragbridge", "serve"], base, env, echo=True)
        startup = 180.0
        with (
            running(upstream, probe="/models", startup_timeout=startup, stop_timeout=20),
            running(server, startup_timeout=startup, stop_timeout=20),
        ):
            seed = httpx.post(
                f"{base}/v1/collections/bench/documents",
                files={"file": ("seed.txt", korean_text(20_000), "text/plain")},
                timeout=120,
            )
            seed.raise_for_status()
            rows = [measure_baseline(base), *measure_load(base, args)]
    print("| phase | probes | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(row)


def measure_baseline(base: str) -> str:
    stop, seconds = threading.Event(), []  # type: ignore[var-annotated]
    worker = threading.Thread(target=probe, args=(base, stop, seconds))
    worker.start()
    time.sleep(5)
    stop.set()
    worker.join()
    return stats("baseline (idle)", seconds)


def measure_load(base: str, args: argparse.Namespace) -> list[str]:
    results: dict[str, str] = {}
    message = korean_text(int(args.message_mb * 1024 * 1024)).decode()
    document = korean_text(int(args.ingest_mb * 1024 * 1024))

    def chat() -> None:
        started = time.monotonic()
        body = {"model": "rag/bench", "messages": [{"role": "user", "content": message}]}
        try:
            response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120)
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        results["chat"] = f"{outcome} in {time.monotonic() - started:.1f} s"

    def ingest() -> None:
        started = time.monotonic()
        try:
            response = httpx.post(
                f"{base}/v1/collections/bench/documents",
                files={"file": ("big.txt", document, "text/plain")},
                timeout=args.seconds + 600,
            )
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        results["ingest"] = f"{outcome} in {time.monotonic() - started:.1f} s"

    stop, seconds = threading.Event(), []  # type: ignore[var-annotated]
    prober = threading.Thread(target=probe, args=(base, stop, seconds))
    prober.start()
    loads = [threading.Thread(target=chat), threading.Thread(target=ingest, daemon=True)]
    for thread in loads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    prober.join()
    loads[0].join(timeout=120)
    label = f"{args.message_mb:g} MB chat + {args.ingest_mb:g} MB ingest, {args.seconds:g} s"
    notes = f"chat: {results.get('chat', 'unfinished')}; ingest: {results.get('ingest', 'running')}"
    return [stats(label, seconds), f"| {notes} | | | | |"]


if __name__ == "__main__":
    main()
