"""The golden sample a model version is proved on before it serves, and what it answered there in fp32.

Evaluation draws it (seeded) from the golden set it has just scored, with the
candidate's own fp32 answers, and stores it with the version's evaluation
artifacts; the gateway scores the same texts in its serving precision and
batching and compares (:mod:`serving.infra_validation`). The gateway therefore
needs neither the training data nor the golden set, and it compares like with
like: the same rows, the same model, only the arithmetic differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class InfraSample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    texts: list[str]
    labels: list[str]  # the golden labels
    predicted: list[str]  # what the version answered at evaluation, in fp32
    precision: str = "fp32"

    @model_validator(mode="after")
    def _same_length(self) -> InfraSample:
        if not len(self.texts) == len(self.labels) == len(self.predicted):
            raise ValueError("texts, labels and predicted must have one entry per sampled golden row")
        return self

    @property
    def accuracy(self) -> float:
        """The version's accuracy on these rows as evaluated (fp32)."""
        if not self.texts:
            return float("nan")
        return sum(p == t for p, t in zip(self.predicted, self.labels, strict=True)) / len(self.texts)


def draw(
    texts: Sequence[str], labels: Sequence[str], predicted: Sequence[str], size: int, seed: int = 0
) -> InfraSample:
    """A seeded sample of ``size`` golden rows (all of them when the set is smaller), in set order."""
    count = min(size, len(texts))
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), count, replace=False))
    return InfraSample(
        texts=[str(texts[i]) for i in chosen],
        labels=[str(labels[i]) for i in chosen],
        predicted=[str(predicted[i]) for i in chosen],
    )


def save(sample: InfraSample, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sample.model_dump_json(), encoding="utf-8")
    return path


def load(path: Path) -> InfraSample:
    """The stored sample; a file that is not one raises ValueError naming the file."""
    try:
        return InfraSample.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as error:
        raise ValueError(f"{path} is not a readable infra-validation sample: {error}") from error
