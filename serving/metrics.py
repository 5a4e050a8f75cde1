"""Prometheus metrics of one gateway: requests, errors and latency per model version and role."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from modeling.hardware import HardwarePlan
from serving.infra_validation import InfraVerdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, plan: HardwarePlan) -> None:
        # A registry per gateway, so tests and several apps in one process do not collide.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bertloop_predictions_total", "Predictions made", ["model_version", "role", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "bertloop_prediction_errors_total", "Predictions that failed", ["model_version", "role"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "bertloop_prediction_latency_seconds", "Time from request to answer", ["model_version", "role"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.canary_percent = Gauge(
            "bertloop_canary_percent", "Share of callers routed to the canary", registry=self.registry
        )
        self.in_flight = Gauge(
            "bertloop_requests_in_flight", "Requests waiting for their forward pass", registry=self.registry
        )
        self.mirror_backlog = Gauge(
            "bertloop_mirror_backlog", "Mirrored texts waiting to be scored", registry=self.registry
        )
        Gauge(
            "bertloop_serving_plan", "Device and precision the gateway serves in (always 1)",
            ["device", "precision"], registry=self.registry,
        ).labels(plan.device, plan.precision).set(1)  # fmt: skip
        self.infra_passed = Gauge(
            "bertloop_infra_validation_passed", "1 if the version passed infra validation, 0 if refused",
            ["model_version"], registry=self.registry,
        )  # fmt: skip
        self.infra_accuracy = Gauge(
            "bertloop_infra_validation_accuracy", "Accuracy on the golden sample as served",
            ["model_version"], registry=self.registry,
        )  # fmt: skip

    def record_infra_verdicts(self, verdicts: Mapping[str, InfraVerdict]) -> None:
        for version, verdict in verdicts.items():
            self.infra_passed.labels(version).set(1 if verdict.passed else 0)
            if verdict.accuracy is not None:
                self.infra_accuracy.labels(version).set(verdict.accuracy)

    def observe(self, model_version: str, role: str, status: str, latency_ms: float, count: int = 1) -> None:
        self.requests.labels(model_version, role, status).inc(count)
        if status != "ok":
            self.errors.labels(model_version, role).inc(count)
        self.latency.labels(model_version, role).observe(latency_ms / 1000)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
