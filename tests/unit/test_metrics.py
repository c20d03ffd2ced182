"""Metrics live in a registry of their own, and client-chosen labels cannot grow it unbounded."""

from __future__ import annotations

from prometheus_client import REGISTRY

from ragbridge.service.telemetry import OTHER, Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_app_counts_on_its_own() -> None:
    a, b = Metrics(), Metrics()
    a.observe_request("GET", "/v1/models", 200, "", 0.01)
    labels = {"method": "GET", "route": "/v1/models", "status": "200", "model": ""}
    assert value(a, "ragbridge_http_requests_total", **labels) == 1
    assert value(b, "ragbridge_http_requests_total", **labels) is None
    assert REGISTRY.get_sample_value("ragbridge_http_requests_total", labels) is None


def test_model_labels_are_capped() -> None:
    metrics = Metrics(label_cap=2)
    for model in ["a", "b", "c", "d", "a"]:
        metrics.observe_ttft(model, 0.1)
    assert value(metrics, "ragbridge_time_to_first_token_seconds_count", model="a") == 2
    assert value(metrics, "ragbridge_time_to_first_token_seconds_count", model=OTHER) == 2


def test_tokens_cache_ingest_retrieval_and_upstream_counters() -> None:
    metrics = Metrics()
    metrics.add_tokens("rag/docs", "team", prompt=120, completion=30)
    metrics.add_tokens("rag/docs", "team", prompt=10, completion=0)
    metrics.count_cache("retrieval", hit=True)
    metrics.count_cache("retrieval", hit=False)
    metrics.count_ingest("added", 3)
    metrics.observe_retrieval("hybrid", 0.02, hits=5)
    metrics.count_upstream_retry("503")
    metrics.count_upstream_error("timeout")
    tokens = "ragbridge_tokens_total"
    assert value(metrics, tokens, model="rag/docs", key="team", direction="prompt") == 130
    assert value(metrics, tokens, model="rag/docs", key="team", direction="completion") == 30
    assert value(metrics, "ragbridge_cache_lookups_total", cache="retrieval", result="hit") == 1
    assert value(metrics, "ragbridge_ingest_documents_total", status="added") == 3
    assert value(metrics, "ragbridge_retrieval_hits_sum", mode="hybrid") == 5
    assert value(metrics, "ragbridge_upstream_retries_total", reason="503") == 1
    assert value(metrics, "ragbridge_upstream_errors_total", reason="timeout") == 1
    assert b"ragbridge_retrieval_duration_seconds_bucket" in metrics.render()
