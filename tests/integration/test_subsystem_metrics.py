"""Metrics recorded below the HTTP layer move as requests are made: retrieval, ingest, upstream."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from ragbridge.settings import Settings
from tests.support.metrics import Scrape
from tests.support.upstream import ScriptedUpstream, gateway_settings


def test_search_records_retrieval_latency_and_hits(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    upstream: ScriptedUpstream,
) -> None:
    settings = make_settings(
        embedding_base_url=upstream.url,
        embedding_model="scripted-embedding",
        **gateway_settings(upstream),
    )
    text = "Cats sleep most of the day.\n\n고양이는 하루 대부분을 잔다.\n".encode()
    with serve_app(settings) as url:
        start = Scrape(url)

        def upload(name: str, data: bytes) -> httpx.Response:
            files = {"file": (name, data, "application/octet-stream")}
            return httpx.post(f"{url}/v1/collections/pets/documents", files=files, timeout=60)

        assert upload("pets.md", text).status_code == 201
        assert upload("pets.md", text).status_code == 200  # unchanged
        assert upload("broken.pdf", b"%PDF-1.4 not really").status_code >= 400
        before = Scrape(url)
        ingested = "ragbridge_ingest_documents_total"
        for status in ("added", "unchanged", "failed"):
            assert before.value(ingested, status=status) - start.value(ingested, status=status) == 1
        for query in ("cats sleep", "고양이"):
            found = httpx.post(
                f"{url}/v1/search", json={"collection": "pets", "query": query, "mode": "keyword"}
            )
            assert found.status_code == 200 and found.json()["data"], found.text
        after = Scrape(url)
    count = "ragbridge_retrieval_duration_seconds_count"
    assert after.value(count, mode="keyword") - before.value(count, mode="keyword") == 2
    hits = "ragbridge_retrieval_hits_sum"
    assert after.value(hits, mode="keyword") - before.value(hits, mode="keyword") >= 2


def test_upstream_retries_and_errors_are_counted(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    upstream: ScriptedUpstream,
) -> None:
    chat = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    with serve_app(make_settings(**gateway_settings(upstream, upstream_max_retries=2))) as url:
        before = Scrape(url)
        upstream.fail_next(1, status=503)
        assert httpx.post(f"{url}/v1/chat/completions", json=chat).status_code == 200
        upstream.fail_next(3, status=502)
        assert httpx.post(f"{url}/v1/chat/completions", json=chat).status_code == 502
        after = Scrape(url)
    retries, errors = "ragbridge_upstream_retries_total", "ragbridge_upstream_errors_total"
    assert after.value(retries, reason="503") - before.value(retries, reason="503") == 1
    assert after.value(retries, reason="502") - before.value(retries, reason="502") == 2
    assert after.value(errors, reason="502") - before.value(errors, reason="502") == 1
