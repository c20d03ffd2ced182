"""What the one retry policy (`ragbridge.retry.send`, on tenacity) costs a request that needs no
retry, next to a bare `httpx` send, both over the same in-process `httpx.MockTransport`.

Blocks alternate so drift on a shared machine hits both alike; reported is µs per request
(median of the blocks) and the difference.

    python -m bench.retry_overhead                 # 20 blocks of 500 requests
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from ragbridge.retry import RetryPolicy, send

BODY = {"model": "m", "messages": [{"role": "user", "content": "연차는 며칠인가요?"}]}


async def block(client: httpx.AsyncClient, requests: int, *, retried: bool) -> float:
    """µs per request for one block of `requests` POSTs."""
    policy = RetryPolicy()
    started = time.perf_counter()
    for _ in range(requests):
        request = client.build_request("POST", "http://llm.test/v1/chat/completions", json=BODY)
        if retried:
            response = (await send(client, request, policy, resend=False)).response
        else:
            response = await client.send(request, stream=True)
        await response.aread()
        await response.aclose()
    return (time.perf_counter() - started) / requests * 1e6


async def main(blocks: int, requests: int) -> None:
    answer = {"choices": [{"message": {"content": "15일입니다."}}]}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    bare: list[float] = []
    retried: list[float] = []
    async with httpx.AsyncClient(transport=transport) as client:
        await block(client, requests, retried=True)  # warm up
        for _ in range(blocks):
            bare.append(await block(client, requests, retried=False))
            retried.append(await block(client, requests, retried=True))
    b, r = statistics.median(bare), statistics.median(retried)
    print(f"bare httpx send:       {b:7.1f} µs/request")
    print(f"ragbridge.retry.send:  {r:7.1f} µs/request  (+{r - b:.1f} µs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.blocks, args.requests))
