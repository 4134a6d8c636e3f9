"""The `djepa_*` metrics: recorded here, exported by the ingress's `/metrics`.

Where they are observed: the generator replica measures each forward pass (size, duration) and each
item's queue wait, and returns them with the item (`BatchStats`); the ingress records them here.
Each pass is recorded once, by the ingress that receives the pass's `first` item, so
`djepa_batch_size` counts real forward passes even across ingress replicas (sum over replicas).
Ray's own `ray_serve_*` series come from Ray's metrics port (`ray_local.start_ray(metrics_port=...)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.types import BatchStats, Modality

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    """One registry per process; the only place `djepa_*` values are recorded."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram("djepa_request_duration_seconds", "Request latency at the ingress.",
                                          ["endpoint", "model", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("djepa_queue_wait_seconds",
                                    "Wait of an image from arrival at the generator to the start of its batch.",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("djepa_batch_size", "Images per forward pass of the generator.",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.generation_duration = Histogram("djepa_generation_duration_seconds",
                                             "Wall time of one forward pass (a batch).", ["model"],
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("djepa_requests_in_flight", "Requests being served by this ingress.", ["model"],
                               registry=r)
        self.outputs = Counter("djepa_outputs_total", "Outputs generated.", ["model", "modality"], registry=r)
        self.rejected = Counter("djepa_rejected_total", "Requests answered with an error.", ["model", "reason"],
                                registry=r)

    def observe_request(self, endpoint: str, model: str, status: int | str, seconds: float) -> None:
        """One answered request: HTTP status (REST) or gRPC code name (gRPC, endpoint "/pkg.Service/RPC")."""
        self.request_duration.labels(endpoint, model, str(status)).observe(seconds)

    def observe_outputs(self, model: str, modality: Modality, stats: list[BatchStats]) -> None:
        """One request's outputs and the passes they came from."""
        self.outputs.labels(model, modality).inc(len(stats))
        for s in stats:
            self.queue_wait.labels(model).observe(s.queue_wait_s)
            if s.first:
                self.batch_size.labels(model).observe(s.size)
                self.generation_duration.labels(model).observe(s.generation_s)

    def reject(self, model: str, reason: str) -> None:
        self.rejected.labels(model, reason).inc()

    @contextmanager
    def in_flight_request(self, model: str) -> Iterator[None]:
        gauge = self.in_flight.labels(model)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def exposition(self) -> tuple[bytes, str]:
        """Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
