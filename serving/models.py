"""The models the gateway serves, found by MLflow alias and swapped without failing a request.

A request reads the routing state once and keeps that snapshot to the end, so a
swap mid-request never changes the model it is using; the old model object
lives until the last request holding it finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from modeling.runner import ClassifierRunner
from registry.mlflow_registry import canary_percent, connect, load_version, version_for_alias

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A registered version the gateway routes to, scored through the one model runner."""

    version: str
    runner: ClassifierRunner = field(repr=False)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        scored = self.runner.score(texts, batch_size=max(len(texts), 1))
        return [
            Prediction(label, confidence, scores)
            for label, confidence, scores in zip(
                scored.labels, scored.confidences, scored.scores, strict=True
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


def load_from_registry(config: PlatformConfig, version: str) -> ServedModel:
    connect(config)  # loading by models:/ URI goes through the configured registry
    model, tokenizer = load_version(config.registry.model_name, version)
    runner = ClassifierRunner.from_components(model, tokenizer, config.training.max_length)
    return ServedModel(version=version, runner=runner)


class RegistryWatcher:
    """Reads aliases and the canary share from MLflow; loads each new version once, off the request path."""

    def __init__(
        self,
        config: PlatformConfig,
        loader: Callable[[PlatformConfig, str], ServedModel] = load_from_registry,
    ):
        self.config = config
        self.loader = loader
        self._loaded: dict[str, ServedModel] = {}

    def refresh(self) -> RoutingState:
        client = connect(self.config)
        name = self.config.registry.model_name
        champion = version_for_alias(client, name, constants.CHAMPION_ALIAS)
        canary = version_for_alias(client, name, constants.CHALLENGER_ALIAS)
        percent = canary_percent(client, name) if canary else 0.0
        wanted = {version for version in (champion, canary) if version}
        for version in wanted - self._loaded.keys():
            log.info("loading %s version %s", name, version)
            self._loaded[version] = self.loader(self.config, version)
        for version in self._loaded.keys() - wanted:
            del self._loaded[version]  # in-flight requests keep their own reference
        return RoutingState(
            champion=self._loaded.get(champion) if champion else None,
            canary=self._loaded.get(canary) if canary and canary != champion else None,
            canary_percent=percent,
        )
