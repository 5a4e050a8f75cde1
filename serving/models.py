"""The models the gateway serves: a registered version on the serving plan, and the routing snapshot.

A request reads the routing state once and keeps that snapshot to the end, so a
swap mid-request never changes the model it is using; the old model object
lives until the last request holding it finishes. Which versions are loaded,
and when, is :mod:`serving.watcher`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bertloop.core.config import PlatformConfig
from bertloop.core.stores.predictions import encode_embedding
from modeling.hardware import HardwarePlan, inference_plan
from modeling.runner import ClassifierRunner, Compute, inline
from registry.mlflow_registry import connect, load_version


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]
    embedding: bytes | None = None  # the mean-pooled sentence embedding, float16, for the log


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A registered version the gateway routes to, scored through the one model runner."""

    version: str
    runner: ClassifierRunner = field(repr=False)
    log_embeddings: bool = True

    @property
    def max_length(self) -> int:
        return self.runner.max_length

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        scored = self.runner.score(texts, batch_size=max(len(texts), 1), embeddings=self.log_embeddings)
        embeddings = (
            [encode_embedding(row) for row in scored.embeddings]
            if scored.embeddings is not None
            else [None] * len(texts)
        )
        return [
            Prediction(label, confidence, scores, embedding)
            for label, confidence, scores, embedding in zip(
                scored.labels, scored.confidences, scored.scores, embeddings, strict=True
            )
        ]


@dataclass(frozen=True)
class RoutingState:
    champion: ServedModel | None
    canary: ServedModel | None
    canary_percent: float

    def describe(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version if self.champion else None,
            "canary": self.canary.version if self.canary else None,
            "canary_percent": self.canary_percent,
        }

    def calibration(self) -> dict[str, Any]:
        """The temperature each routed model's confidences are divided by (1.0: none fitted)."""
        return {
            "temperatures": {
                role: model.runner.temperature
                for role, model in (("champion", self.champion), ("canary", self.canary))
                if model is not None
            }
        }


def serving_plan(config: PlatformConfig) -> HardwarePlan:
    """Device and precision the gateway serves in (and drift checks embed in): ``serving.*``."""
    return inference_plan(config.serving.device, requested_precision=config.serving.precision)


def load_from_registry(config: PlatformConfig, version: str, compute: Compute = inline) -> ServedModel:
    """Read ``version`` from the registry on the calling thread, then put it on the serving plan (cast
    or quantise it a layer at a time) through ``compute``, where the gateway runs torch."""
    connect(config)  # loading by models:/ URI goes through the configured registry
    model, tokenizer = load_version(config.registry.model_name, version)
    runner = ClassifierRunner.from_components(
        model, tokenizer, config.training.max_length, serving_plan(config), compute
    )
    return ServedModel(version=version, runner=runner, log_embeddings=config.serving.log_embeddings)
