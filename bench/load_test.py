"""Load test: N concurrent streaming chats through ragbridge for a fixed time, on loopback.

    python -m bench.load_test                          # 200 streams, 60 s, then the baseline
    python -m bench.load_test --concurrency 50 --duration 20 --no-baseline

Starts the scripted upstream (`tests.support.upstream`, 16 tokens 50 ms apart: an LLM at
20 tokens/s) and `ragbridge serve` as separate processes, creates an API key with
`ragbridge keys create` (so every request is authenticated by a store lookup), and runs
`--concurrency` clients that each stream one chat after another until `--duration` is up.
Reports completed streams per second, time to first token (p50/p99), errors, ragbridge's CPU
time per stream, and its RSS every 5 s from the end of the warm-up (memory growth). The baseline
is the same load sent straight to the upstream: what the clients and the upstream cost without
ragbridge in between.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from tests.support.server import ServerProcess, free_port, running

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """What the clients saw in one run."""

    streams: int = 0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)
    cpu_seconds: float = 0.0  # ragbridge's CPU time (user + system) while measured


async def one_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], result: Result
) -> None:
    body = {
        "model": "bench-model",
        "stream": True,
        "messages": [{"role": "user", "content": "Summarise the quarterly report in a paragraph."}],
    }
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    done = False
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            result.errors.append(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
            return
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            if "error" in chunk:
                result.errors.append(f"stream error: {chunk['error']}")
                return
            choices = chunk.get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                tokens += 1
                if first is None:
                    first = time.perf_counter() - started
    if not done or first is None:
        result.errors.append("stream ended without tokens or [DONE]")
        return
    result.streams += 1
    result.tokens += tokens
    result.ttft.append(first)


async def drive(
    url: str,
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    warmup: float,
    pid: int | None,
) -> Result:
    """`concurrency` clients streaming back to back; only streams started after warm-up count."""
    result, discard = Result(), Result()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.monotonic()
    measure_from = started + warmup
    deadline = measure_from + duration

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            target = result if time.monotonic() >= measure_from else discard
            try:
                await one_stream(client, url, headers, target)
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                target.errors.append(f"{type(exc).__name__}: {exc}")

    async def sample_rss() -> None:
        if pid is None:
            return
        proc = psutil.Process(pid)
        await asyncio.sleep(warmup)
        cpu_start = sum(proc.cpu_times()[:2])
        while (now := time.monotonic()) < deadline:
            result.rss_mb.append((now - measure_from, proc.memory_info().rss / 2**20))
            await asyncio.sleep(min(5.0, deadline - now))
        result.cpu_seconds = sum(proc.cpu_times()[:2]) - cpu_start

    timeout = httpx.Timeout(60.0, connect=10.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        await asyncio.gather(sample_rss(), *(client_loop(client) for _ in range(concurrency)))
    if pid:
        result.rss_mb.append((duration, psutil.Process(pid).memory_info().rss / 2**20))
    return result


def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0.0
    )


def report(name: str, result: Result, duration: float) -> str:
    ttft = [t * 1000 for t in result.ttft]
    rss = cpu = ""
    if result.cpu_seconds and result.streams:
        cpu = f"{result.cpu_seconds * 1000 / result.streams:.1f}"
    if result.rss_mb:
        start, end = result.rss_mb[0][1], result.rss_mb[-1][1]
        rss = f"{start:.0f} → {end:.0f} MiB ({end - start:+.1f})"
    return (
        f"| {name} | {result.streams / duration:.1f} | {result.tokens / duration:.0f} | "
        f"{percentile(ttft, 50):.0f} | {percentile(ttft, 99):.0f} | {len(result.errors)} | "
        f"{cpu} | {rss} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--token-delay", type=float, default=0.05)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    env.update(OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    up_port, rb_port = free_port(), free_port()
    upstream_cmd = [sys.executable, "-m", "tests.support.upstream", "--port", str(up_port)]
    upstream_cmd += ["--tokens", str(args.tokens), "--token-delay", str(args.token_delay)]
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        env.update(
            RAGBRIDGE_DATA_DIR=data_dir,
            RAGBRIDGE_SAMPLE_COLLECTION="false",
            RAGBRIDGE_API_KEY="load-test-admin",
            RAGBRIDGE_UPSTREAM_BASE_URL=f"http://127.0.0.1:{up_port}/v1",
            RAGBRIDGE_LOG_JSON="true",
        )
        created = subprocess.run(
            [sys.executable, "-m", "ragbridge", "keys", "create", "--name", "load"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        key = created.stdout.strip().splitlines()[-1]
        serve_cmd = [sys.executable, "-m", "ragbridge", "serve", "--port", str(rb_port)]
        upstream_url = f"http://127.0.0.1:{up_port}/v1"
        logs = Path(data_dir)
        upstream = ServerProcess(upstream_cmd, upstream_url, env, logs / "upstream.log", cwd=ROOT)
        with running(upstream, probe="/models"):
            if not args.no_baseline:
                base = asyncio.run(
                    drive(
                        f"{upstream_url}/chat/completions",
                        {},
                        args.concurrency,
                        args.duration,
                        args.warmup,
                        None,
                    )
                )
                rows.append(report("upstream directly (baseline)", base, args.duration))
            rb_url = f"http://127.0.0.1:{rb_port}"
            server = ServerProcess(serve_cmd, rb_url, env, logs / "ragbridge.log", cwd=ROOT)
            with running(server) as served:
                through = asyncio.run(
                    drive(
                        f"http://127.0.0.1:{rb_port}/v1/chat/completions",
                        {"Authorization": f"Bearer {key}"},
                        args.concurrency,
                        args.duration,
                        args.warmup,
                        served.proc.pid,
                    )
                )
                rows.append(report("through ragbridge", through, args.duration))
    print(
        f"{args.concurrency} concurrent streams, {args.tokens} tokens "
        f"{args.token_delay * 1000:.0f} ms apart, {args.duration:.0f} s measured "
        f"after {args.warmup:.0f} s warm-up\n"
    )
    print(
        "| path | streams/s | tokens/s | TTFT p50 ms | TTFT p99 ms | errors "
        "| ragbridge CPU ms/stream | ragbridge RSS |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    if through.rss_mb:
        print("\nRSS samples (s, MiB):", ", ".join(f"{t:.0f}:{m:.1f}" for t, m in through.rss_mb))
    for error in sorted(set(through.errors))[:10]:
        print("error:", error)


if __name__ == "__main__":
    main()
