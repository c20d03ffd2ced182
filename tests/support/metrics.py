"""Read ragbridge's `/metrics` as numbers, to compare before and after some requests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape of `/metrics`: `scrape.value("name_total", label="x")` (0 when absent)."""

    def __init__(self, base_url: str) -> None:
        response = httpx.get(base_url + "/metrics")
        response.raise_for_status()
        self.samples = [
            sample
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels`."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )
