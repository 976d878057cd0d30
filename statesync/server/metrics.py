"""Prometheus metrics of the controller.

Commits are counted by the native data-plane server, which serves them; its
counters and the per-worker figures of the sync hub are read at scrape time,
so a worker that is forgotten leaves no stale series behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["COMMIT_SECONDS_BUCKETS", "CommitStats", "Metrics", "commit_metrics"]

COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
"""Upper bounds (seconds) of `statesync_commit_seconds`."""


@dataclass(frozen=True, slots=True)
class CommitStats:
    """The data plane's commit counters at one moment."""

    commits: int
    errors: Mapping[str, int]
    """Refused commands by error class."""
    buckets: Sequence[int]
    """Commits per latency bucket of `COMMIT_SECONDS_BUCKETS`, then above the
    last bound (not cumulative)."""
    seconds: float
    """Total commit latency."""


def commit_metrics(stats: CommitStats, *, created: float) -> Iterator[Metric]:
    """The commit families as a `Counter`/`Histogram` pair exposed them."""
    commits = CounterMetricFamily("statesync_commits", "Commands committed.", labels=[])
    commits.add_metric([], stats.commits, created=created)
    errors = CounterMetricFamily(
        "statesync_commit_errors", "Commands refused, by error type.", labels=["error"]
    )
    for error, count in sorted(stats.errors.items()):
        errors.add_metric([error], count, created=created)
    cumulative, buckets = 0, []
    for bound, count in zip([*COMMIT_SECONDS_BUCKETS, float("inf")], stats.buckets, strict=True):
        cumulative += count
        # The `le` label as prometheus_client's Histogram writes it: 1 is "1.0".
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(cumulative)))
    seconds = HistogramMetricFamily(
        "statesync_commit_seconds",
        "Time from receiving a command to its durable commit.",
        buckets=buckets,
        sum_value=stats.seconds,
    )
    seconds.samples.append(Sample("statesync_commit_seconds_created", {}, created))
    yield from (commits, errors, seconds)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def watch(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """Register a scrape-time collector."""
        self.registry.register(_Callback(collect))


class _Callback(Collector):
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return self._collect()
