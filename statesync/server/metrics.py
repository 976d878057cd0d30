"""Prometheus metrics of the controller.

Counters and histograms are updated on the commit path; per-worker figures
are read from the sync hub at scrape time, so a worker that is forgotten
leaves no stale series behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commits = Counter("statesync_commits", "Commands committed.", registry=self.registry)
        self.commit_errors = Counter(
            "statesync_commit_errors",
            "Commands refused, by error type.",
            ["error"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "statesync_commit_seconds",
            "Time from receiving a command to its durable commit.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def watch(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Register a scrape-time collector."""
        self.registry.register(_Callback(collect))


class _Callback(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return self._collect()


def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)
