"""Proxy overhead: the latency ragbridge adds in front of an upstream LLM, versus going direct.

The scripted upstream (tests/support/upstream.py) and ragbridge (`ragbridge serve`, as shipped)
run as separate processes on loopback; this process streams chat completions at each, one
concurrency level at a time, alternating direct and proxied blocks so drift hits both alike.
Reported: time to first token and to the end of the stream, p50 and p99, and what ragbridge adds.

    python -m bench.proxy_overhead                      # 1 and 64 concurrent streams
    python -m bench.proxy_overhead --requests 400 --concurrency 1 8 64 --tokens 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.server import ServerProcess, free_port, ragbridge_env, running

CHAT = {"model": "bench-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Samples:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def _has_content(payload: str) -> bool:
    choices = json.loads(payload).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def one_stream(client: httpx.AsyncClient, url: str, samples: Samples) -> None:
    """Stream one completion; record time to the first content token and to `[DONE]`."""
    started = time.perf_counter()
    first: float | None = None
    done: float | None = None
    async with client.stream("POST", url, json=CHAT) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():  # to the end, so the connection is reused
            if line == "data: [DONE]":
                done = time.perf_counter()
            elif first is None and line.startswith("data: ") and _has_content(line[6:]):
                first = time.perf_counter()
    if first is None or done is None:
        raise RuntimeError("stream had no content or no [DONE]")
    samples.ttft.append(first - started)
    samples.total.append(done - started)


async def run_block(url: str, requests: int, concurrency: int, samples: Samples) -> None:
    """`requests` streams, `concurrency` at a time, over one pooled client."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                await one_stream(client, url, samples)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Level:
    """One concurrency level: direct and proxied samples, and ragbridge's CPU per stream."""

    concurrency: int
    direct: Samples = field(default_factory=Samples)
    proxied: Samples = field(default_factory=Samples)
    cpu_per_stream: float = 0.0


async def measure(
    direct: str, proxied: str, server_pid: int, requests: int, concurrency: int, blocks: int
) -> Level:
    """Warm both up, then alternate blocks of direct and proxied streams."""
    for url in (direct, proxied):
        await run_block(url, max(concurrency, 20), concurrency, Samples())
    level = Level(concurrency)
    per_block = max(concurrency, requests // blocks)
    cpu = 0.0
    for _ in range(blocks):
        await run_block(direct, per_block, concurrency, level.direct)
        before = cpu_seconds(server_pid)
        await run_block(proxied, per_block, concurrency, level.proxied)
        cpu += cpu_seconds(server_pid) - before
    level.cpu_per_stream = cpu / len(level.proxied.total)
    return level


def table(levels: list[Level]) -> str:
    """The README table: per concurrency, direct / via ragbridge / added, in milliseconds."""
    lines = [
        "| streams | metric | direct p50 | via ragbridge p50 | added p50 | direct p99 "
        "| via ragbridge p99 | added p99 |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in levels:
        for name, a, b in (
            ("time to first token", level.direct.ttft, level.proxied.ttft),
            ("whole stream", level.direct.total, level.proxied.total),
        ):
            cells = []
            for q in (50, 99):
                da, db = percentile(a, q) * 1000, percentile(b, q) * 1000
                cells += [f"{da:.2f}", f"{db:.2f}", f"{db - da:+.2f}"]
            lines.append(
                f"| {level.concurrency} | {name} | {cells[0]} | {cells[1]} | **{cells[2]}** "
                f"| {cells[3]} | {cells[4]} | {cells[5]} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="streams per target and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--tokens", type=int, default=16, help="tokens per streamed answer")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks per target")
    parser.add_argument("--server-logs", action="store_true", help="show the servers' logs")
    args = parser.parse_args()

    upstream_port, ragbridge_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    proxied = f"http://127.0.0.1:{ragbridge_port}"
    env = ragbridge_env(TOKENIZERS_PARALLELISM="false")
    upstream_cmd = [sys.executable, "-m", "tests.support.upstream", "--port", str(upstream_port)]
    serve_cmd = [sys.executable, "-m", "ragbridge", "serve", "--port", str(ragbridge_port)]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data_dir:
        upstream_cmd += ["--tokens", str(args.tokens)]
        echo = args.server_logs
        upstream_server = ServerProcess(upstream_cmd, upstream, env, echo=echo)
        stack.enter_context(running(upstream_server, probe="/models", startup_timeout=60))
        serve_env = {**env, "RAGBRIDGE_UPSTREAM_BASE_URL": upstream, "RAGBRIDGE_DATA_DIR": data_dir}
        server = ServerProcess(serve_cmd, proxied, serve_env, echo=echo)
        stack.enter_context(running(server, startup_timeout=60, stop_timeout=10))
        levels = []
        for concurrency in args.concurrency:
            level = asyncio.run(
                measure(
                    f"{upstream}/chat/completions",
                    f"{proxied}/v1/chat/completions",
                    server.proc.pid,
                    args.requests,
                    concurrency,
                    args.blocks,
                )
            )
            levels.append(level)
            ratio = statistics.median(level.proxied.total) / statistics.median(level.direct.total)
            print(
                f"{concurrency} concurrent: {len(level.direct.total)} streams per target, "
                f"whole-stream p50 ratio {ratio:.2f}, "
                f"ragbridge CPU {level.cpu_per_stream * 1000:.2f} ms per stream"
            )
    print(f"\n{args.tokens} tokens per stream; milliseconds.\n")
    print(table(levels))


if __name__ == "__main__":
    main()
