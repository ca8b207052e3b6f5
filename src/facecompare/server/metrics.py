"""Prometheus metrics of one worker: requests, errors, latency, throttling, the engine queue and connections."""

from __future__ import annotations

import sys

from .limits import EngineQueue


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("facecompare_requests_total", "Requests by operation and status",
                                ["operation", "status"], registry=self.registry)
        self.errors = Counter("facecompare_errors_total", "Errors by type", ["type"], registry=self.registry)
        self.latency = Histogram("facecompare_request_seconds", "Request latency by operation", ["operation"],
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60),
                                 registry=self.registry)
        self.throttled = Counter("facecompare_throttled_total",
                                 "Requests refused at once with ThrottlingException, by reason: queue (too many "
                                 "requests waiting for the engine), connections (over FACECOMPARE_MAX_CONNECTIONS)",
                                 ["reason"], registry=self.registry)
        self.registry.register(_ConnectionsCollector())

    def watch_engine(self, engine: EngineQueue) -> None:
        from prometheus_client import Gauge

        Gauge("facecompare_engine_running", "Engine calls running in this worker",
              registry=self.registry).set_function(lambda: engine.running)
        Gauge("facecompare_engine_waiting", "Requests waiting for the engine in this worker (at most "
              "FACECOMPARE_MAX_QUEUE)", registry=self.registry).set_function(lambda: engine.waiting)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _ConnectionsCollector:
    """``facecompare_connections_closed_total{reason}``: connections the worker's HTTP protocol closed on a
    timeout (``protocol.CLOSED``; stays empty when the app runs under another server than ``facecompare
    serve``)."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("facecompare_connections_closed", "Connections the server closed on a "
                                     "timeout, by reason: header_timeout (a request's headers not complete in "
                                     "time), send_timeout (the client stopped reading)", labels=["reason"])
        protocol = sys.modules.get("facecompare.server.protocol")
        for reason, count in sorted((protocol.CLOSED if protocol else {}).items()):
            family.add_metric([reason], count)
        yield family
