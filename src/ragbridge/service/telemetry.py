"""Prometheus metrics for one app: a private registry and one method per thing worth counting.
Labels from clients (model names) or configuration (key names) are capped, so nobody can grow the
registry without bound."""

from __future__ import annotations

from functools import partial

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
_RETRIEVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_HITS_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100)
OTHER = "other"
"""Label value standing in for any value past a label's cap."""


class _CappedLabel:
    """Passes the first `cap` distinct values of a label through, then maps new ones to OTHER."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value not in self._seen and len(self._seen) < self._cap:
            self._seen.add(value)
        return value if value in self._seen else OTHER


class Metrics:
    """Every ragbridge metric, in a registry of its own (never the process-wide default)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, label_cap: int = 200) -> None:
        self.registry = CollectorRegistry()
        self._model = _CappedLabel(label_cap)
        self._key = _CappedLabel(label_cap)
        counter = partial(Counter, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.requests = counter(
            "ragbridge_http_requests",
            "HTTP requests by route template, status and model.",
            ["method", "route", "status", "model"],
        )
        self.request_seconds = histogram(
            "ragbridge_http_request_duration_seconds",
            "Time from request to the end of the response (whole stream), by route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
        )
        self.in_flight = gauge("ragbridge_http_requests_in_flight", "Requests being served now.")
        self.ttft_seconds = histogram(
            "ragbridge_time_to_first_token_seconds",
            "Time from request to the first generated token, by model.",
            ["model"],
            buckets=_TTFT_BUCKETS,
        )
        self.upstream_retries = counter(
            "ragbridge_upstream_retries", "Retried upstream calls, by reason.", ["reason"]
        )
        self.upstream_errors = counter(
            "ragbridge_upstream_errors",
            "Failed upstream calls (after retries), by reason.",
            ["reason"],
        )
        self.tokens = counter(
            "ragbridge_tokens",
            "Tokens by model, API key name and direction (prompt or completion).",
            ["model", "key", "direction"],
        )
        self.retrieval_seconds = histogram(
            "ragbridge_retrieval_duration_seconds",
            "Retrieval latency by mode.",
            ["mode"],
            buckets=_RETRIEVAL_BUCKETS,
        )
        self.retrieval_hits = histogram(
            "ragbridge_retrieval_hits",
            "Passages returned per retrieval, by mode.",
            ["mode"],
            buckets=_HITS_BUCKETS,
        )
        self.ingested = counter(
            "ragbridge_ingest_documents",
            "Documents through ingest, by outcome (added, updated, unchanged, failed).",
            ["status"],
        )
        self.cache_lookups = counter(
            "ragbridge_cache_lookups",
            "Cache lookups by cache and result (hit or miss); hit ratio = hit / total.",
            ["cache", "result"],
        )
        self.rate_limited = counter(
            "ragbridge_rate_limited_requests",
            "Requests refused by a rate limit, by key name and limit (requests or tokens).",
            ["key", "limit"],
        )
        self.redis_errors = counter(
            "ragbridge_redis_errors",
            "Failed Redis calls by component (cache, ratelimit); each was served in-process.",
            ["component"],
        )
        self.redis_up = gauge(
            "ragbridge_redis_up",
            "1 while a component uses Redis, 0 while it serves in-process after a failure.",
            ["component"],
        )

    # --- HTTP (recorded by the request middleware) ---------------------------------------
    def observe_request(
        self, method: str, route: str, status: int, model: str, seconds: float
    ) -> None:
        """One finished request; `model` is "" when the request named none."""
        model = self._model(model) if model else ""
        self.requests.labels(method, route, str(status), model).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    # --- generation -----------------------------------------------------------------------
    def observe_ttft(self, model: str, seconds: float) -> None:
        """Time from request to the first token of an answer."""
        self.ttft_seconds.labels(self._model(model)).observe(seconds)

    def add_tokens(self, model: str, key: str, prompt: int, completion: int) -> None:
        """Tokens one request spent, as the upstream reported them (or as estimated)."""
        model, key = self._model(model), self._key(key)
        if prompt:
            self.tokens.labels(model, key, "prompt").inc(prompt)
        if completion:
            self.tokens.labels(model, key, "completion").inc(completion)

    def count_upstream_retry(self, reason: str) -> None:
        """One retried upstream call; reason like "429", "503", "connect", "timeout"."""
        self.upstream_retries.labels(reason).inc()

    def count_upstream_error(self, reason: str) -> None:
        """One upstream call that failed for good (after its retries)."""
        self.upstream_errors.labels(reason).inc()

    # --- retrieval, ingest, caches --------------------------------------------------------
    def observe_retrieval(self, mode: str, seconds: float, hits: int) -> None:
        """One retrieval: its mode (hybrid, dense, keyword), latency and passages found."""
        self.retrieval_seconds.labels(mode).observe(seconds)
        self.retrieval_hits.labels(mode).observe(hits)

    def count_ingest(self, status: str, documents: int = 1) -> None:
        """Documents through ingest by outcome: added, updated, unchanged or failed."""
        self.ingested.labels(status).inc(documents)

    def count_cache(self, name: str, hit: bool) -> None:
        """One lookup in the cache called `name`."""
        self.cache_lookups.labels(name, "hit" if hit else "miss").inc()

    def count_rate_limited(self, key: str, limit: str) -> None:
        """One request refused by `key`'s `limit` (requests or tokens)."""
        self.rate_limited.labels(self._key(key), limit).inc()

    # --- Redis (shared caches and limits) --------------------------------------------------
    def count_redis_error(self, component: str) -> None:
        """One failed Redis call by `component` ("cache" or "ratelimit")."""
        self.redis_errors.labels(component).inc()

    def set_redis_up(self, component: str, up: bool) -> None:
        """Whether `component` is on Redis (True) or degraded to in-process (False)."""
        self.redis_up.labels(component).set(1 if up else 0)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
