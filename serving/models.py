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

from bertloop import constants
from bertloop.config import PlatformConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True, eq=False)
class ServedModel:
    version: str
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    max_length: int = 128

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(len(self.model.config.id2label))]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        import torch

        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        ).to(next(self.model.parameters()).device)
        with torch.inference_mode():
            probabilities = self.model(**encoded).logits.float().softmax(dim=-1).cpu()
        labels = self.labels
        results = []
        for row in probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(Prediction(labels[best], row[best], dict(zip(labels, row, strict=True))))
        return results


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


def load_from_registry(config: PlatformConfig, version: str) -> ServedModel:
    from registry.mlflow_registry import connect, load_version

    connect(config)  # loading by models:/ URI goes through the configured registry
    model, tokenizer = load_version(config.registry.model_name, version)
    model.eval()
    return ServedModel(
        version=version, model=model, tokenizer=tokenizer, max_length=config.training.max_length
    )


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
        from registry import mlflow_registry as registry

        client = registry.connect(self.config)
        name = self.config.registry.model_name
        champion = registry.version_for_alias(client, name, constants.CHAMPION_ALIAS)
        canary = registry.version_for_alias(client, name, constants.CHALLENGER_ALIAS)
        percent = registry.canary_percent(client, name) if canary else 0.0
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
