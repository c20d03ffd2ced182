"""Proxy overhead: the latency ragbridge and LiteLLM proxy add in front of an upstream LLM,
versus going direct.

The scripted upstream (tests/support/upstream.py), ragbridge (`ragbridge serve`, as shipped) and
LiteLLM proxy (`litellm --config`, one model routed to the same upstream) run as separate
processes on loopback, both proxies with a key (ragbridge's `RAGBRIDGE_API_KEY`, LiteLLM's
`LITELLM_MASTER_KEY`). This process streams chat completions at each over the same client, one
concurrency level at a time, alternating direct, ragbridge and LiteLLM blocks so drift hits all
alike. Reported: time to first token and to the end of the stream, p50 and p99, and what each
proxy adds.

    python -m bench.proxy_overhead                      # 1 and 16 concurrent streams
    python -m bench.proxy_overhead --requests 400 --concurrency 1 8 64 --tokens 32
    python -m bench.proxy_overhead --litellm /work/venvs/litellm/bin/litellm

LiteLLM is a bench-only tool, never a ragbridge dependency: install `litellm[proxy]` in a venv
of its own and name its `litellm` executable with `--litellm` or `LITELLM_BIN`. Without it the
bench says so and measures direct and ragbridge only.
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

DIRECT = "direct"
CHAT = {"model": "bench-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
RAGBRIDGE_KEY = "sk-bench-ragbridge"
LITELLM_KEY = "sk-bench-litellm"
LITELLM_CONFIG = """model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-model
      api_base: {upstream}
      api_key: unused
"""


@dataclass
class Samples:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def _has_content(payload: str) -> bool:
    choices = json.loads(payload).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


@dataclass(frozen=True)
class Target:
    """Where streams go: a chat completions URL, its key, and the server's pid (CPU time)."""

    name: str
    url: str
    key: str | None = None
    pid: int | None = None


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


async def run_block(target: Target, requests: int, concurrency: int, samples: Samples) -> None:
    """`requests` streams, `concurrency` at a time, over one pooled client."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                await one_stream(client, target.url, samples)

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
    """One concurrency level: each target's samples and each proxy's CPU seconds per stream."""

    concurrency: int
    samples: dict[str, Samples] = field(default_factory=dict)
    cpu_per_stream: dict[str, float] = field(default_factory=dict)


async def measure(targets: list[Target], requests: int, concurrency: int, blocks: int) -> Level:
    """Warm every target up, then alternate blocks of streams at each."""
    for target in targets:
        await run_block(target, max(concurrency, 20), concurrency, Samples())
    level = Level(concurrency, {target.name: Samples() for target in targets})
    per_block = max(concurrency, requests // blocks)
    cpu = dict.fromkeys(level.samples, 0.0)
    for _ in range(blocks):
        for target in targets:
            before = cpu_seconds(target.pid) if target.pid else 0.0
            await run_block(target, per_block, concurrency, level.samples[target.name])
            if target.pid:
                cpu[target.name] += cpu_seconds(target.pid) - before
    for target in targets:
        if target.pid:
            streams = len(level.samples[target.name].total)
            level.cpu_per_stream[target.name] = cpu[target.name] / streams
    return level


def table(levels: list[Level]) -> str:
    """The docs table: per concurrency and metric, each path's p50/p99 and what it adds to
    direct, in milliseconds."""
    lines = [
        "| streams | metric | path | p50 | p99 | added p50 | added p99 |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for level in levels:
        direct = level.samples[DIRECT]
        for metric in ("ttft", "total"):
            label = "time to first token" if metric == "ttft" else "whole stream"
            base = [percentile(getattr(direct, metric), q) * 1000 for q in (50, 99)]
            for name, samples in level.samples.items():
                values = [percentile(getattr(samples, metric), q) * 1000 for q in (50, 99)]
                added = (
                    ["", ""]
                    if name == DIRECT
                    else [f"**{values[0] - base[0]:+.2f}**", f"{values[1] - base[1]:+.2f}"]
                )
                lines.append(
                    f"| {level.concurrency} | {label} | {name} | {values[0]:.2f} "
                    f"| {values[1]:.2f} | {added[0]} | {added[1]} |"
                )
    return "\n".join(lines)


def litellm_executable(option: str | None) -> Path | None:
    """LiteLLM proxy's `litellm` from `--litellm` or `LITELLM_BIN`, if it is there."""
    named = option or os.environ.get("LITELLM_BIN")
    if named and Path(named).is_file():
        return Path(named)
    where = f"{named} does not exist" if named else "neither --litellm nor LITELLM_BIN is set"
    print(
        f"LiteLLM proxy is absent ({where}): measuring direct and ragbridge only. Install it "
        "in a venv of its own (pip install 'litellm[proxy]') and pass --litellm PATH/bin/litellm."
    )
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="streams per target and level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--tokens", type=int, default=16, help="tokens per streamed answer")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks per target")
    parser.add_argument("--litellm", help="LiteLLM's `litellm` executable (or LITELLM_BIN)")
    parser.add_argument("--server-logs", action="store_true", help="show the servers' logs")
    args = parser.parse_args()
    litellm = litellm_executable(args.litellm)

    upstream_port, ragbridge_port, litellm_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    proxied = f"http://127.0.0.1:{ragbridge_port}"
    env = ragbridge_env(TOKENIZERS_PARALLELISM="false")
    upstream_cmd = [sys.executable, "-m", "tests.support.upstream", "--port", str(upstream_port)]
    serve_cmd = [sys.executable, "-m", "ragbridge", "serve", "--port", str(ragbridge_port)]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data_dir:
        upstream_cmd += ["--tokens", str(args.tokens)]
        echo = args.server_logs
        upstream_server = ServerProcess(upstream_cmd, upstream, env, echo=echo)
        stack.enter_context(running(upstream_server, probe="/models", startup_timeout=300))
        serve_env = {
            **env,
            "RAGBRIDGE_UPSTREAM_BASE_URL": upstream,
            "RAGBRIDGE_DATA_DIR": data_dir,
            "RAGBRIDGE_API_KEY": RAGBRIDGE_KEY,
        }
        server = ServerProcess(serve_cmd, proxied, serve_env, echo=echo)
        stack.enter_context(running(server, startup_timeout=300, stop_timeout=10))
        targets = [
            Target(DIRECT, f"{upstream}/chat/completions"),
            Target("ragbridge", f"{proxied}/v1/chat/completions", RAGBRIDGE_KEY, server.proc.pid),
        ]
        if litellm is not None:
            config = Path(data_dir, "litellm.yaml")
            config.write_text(LITELLM_CONFIG.format(upstream=upstream), encoding="utf-8")
            litellm_env = {
                **env,
                "LITELLM_MASTER_KEY": LITELLM_KEY,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the network at start
            }
            litellm_url = f"http://127.0.0.1:{litellm_port}"
            command = [str(litellm), "--config", str(config), "--host", "127.0.0.1"]
            command += ["--port", str(litellm_port)]
            proxy = ServerProcess(command, litellm_url, litellm_env, echo=echo)
            stack.enter_context(running(proxy, probe="/health/liveliness", startup_timeout=600))
            url = f"{litellm_url}/v1/chat/completions"
            targets.append(Target("LiteLLM proxy", url, LITELLM_KEY, proxy.proc.pid))
        levels = []
        for concurrency in args.concurrency:
            level = asyncio.run(measure(targets, args.requests, concurrency, args.blocks))
            levels.append(level)
            direct = statistics.median(level.samples[DIRECT].total)
            for name, cpu in level.cpu_per_stream.items():
                ratio = statistics.median(level.samples[name].total) / direct
                print(
                    f"{concurrency} concurrent, {name}: {len(level.samples[name].total)} streams, "
                    f"whole-stream p50 ratio {ratio:.2f}, CPU {cpu * 1000:.2f} ms per stream"
                )
    print(f"\n{args.tokens} tokens per stream; milliseconds; load average "
          f"{os.getloadavg()[0]:.1f}.\n")  # fmt: skip
    print(table(levels))


if __name__ == "__main__":
    main()
