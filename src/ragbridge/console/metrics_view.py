"""The status page's traffic numbers, read from the same Prometheus registry `/metrics` serves."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ragbridge.service.telemetry import Metrics


def _quantile(buckets: dict[float, float], q: float) -> float | None:
    """The `q` quantile of a cumulative histogram, interpolated inside its bucket (as PromQL's
    `histogram_quantile` does); None without observations."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 0.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def traffic(metrics: Metrics) -> dict[str, Any]:
    """Requests, errors, tokens and latency since the process started."""
    requests = errors_5xx = errors_4xx = 0.0
    tokens: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "ragbridge_http_requests_total":
                requests += sample.value
                status = sample.labels.get("status", "")
                errors_5xx += sample.value if status.startswith("5") else 0
                errors_4xx += sample.value if status.startswith("4") else 0
            elif sample.name == "ragbridge_tokens_total":
                tokens[sample.labels.get("direction", "")] += sample.value
            elif sample.name == "ragbridge_http_request_duration_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
    p50, p95 = _quantile(buckets, 0.5), _quantile(buckets, 0.95)
    return {
        "requests": int(requests),
        "errors_5xx": int(errors_5xx),
        "errors_4xx": int(errors_4xx),
        "prompt_tokens": int(tokens["prompt"]),
        "completion_tokens": int(tokens["completion"]),
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p95_ms": None if p95 is None else round(p95 * 1000, 1),
    }
