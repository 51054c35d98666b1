"""Prometheus metrics of one service process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The service's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "safestream_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "safestream_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=self.registry,
        )
        self.matches = Counter(
            "safestream_matches",
            "Matches found by checks, by bank and signal type",
            ["bank", "signal_type"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "safestream_verdicts", "Check outcomes", ["outcome"], registry=self.registry
        )
        self.flagged = Counter(
            "safestream_classifier_flags",
            "Checked images a classifier flagged, by category",
            ["category"],
            registry=self.registry,
        )
        self.index_size = Gauge(
            "safestream_index_entries",
            "Entries in this process's indexes, by signal type",
            ["signal_type"],
            registry=self.registry,
        )
        self.change_seq = Gauge(
            "safestream_index_change_seq",
            "Last bank change-log position applied by this process",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "safestream_queue_depth", "Jobs waiting in the job table", registry=self.registry
        )
