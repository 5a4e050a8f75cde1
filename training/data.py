"""Turning labelled text into tokenised examples for the Trainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


class EncodedTexts(torch.utils.data.Dataset):
    """Tokenised once, unpadded: the collator pads each batch to its own longest text."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int] | None, max_length: int):
        self.encodings = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.labels = None if labels is None else list(labels)

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: values[index] for key, values in self.encodings.items()}
        if self.labels is not None:
            item["labels"] = self.labels[index]
        return item


def encode_labels(labels: Sequence[str], label_names: Sequence[str]) -> list[int]:
    index = {name: position for position, name in enumerate(label_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the configured label set {list(label_names)}")
    return [index[label] for label in labels]


@dataclass(frozen=True)
class ValidationSplit:
    """Row positions for training and for validation, and the classes the validation scores leave out."""

    train: list[int]
    validation: list[int]
    # Label ids with rows but none held out (too small to spare the minimum): trained on whole,
    # absent from the validation scores. Empty when nothing is held out at all (fraction 0).
    unvalidated: tuple[int, ...] = ()


def validation_rows_for_class(count: int, fraction: float, min_per_class: int) -> int:
    """How many of a class's ``count`` rows to hold out: ``fraction`` of them, rounded, and at least
    ``min_per_class``, as long as the class keeps as many for training (and always one); else none."""
    if fraction <= 0:
        return 0
    held = max(int(fraction * count + 0.5), min_per_class)
    return held if count - held >= max(min_per_class, 1) else 0


def split_validation(
    labels: Sequence[int], fraction: float, min_per_class: int, seed: int
) -> ValidationSplit:
    """Hold out, per class, :func:`validation_rows_for_class` rows chosen with ``seed``.

    Stratified: with ``min_per_class`` of 1 or more, every class of at least twice
    that many rows is in both parts. A class that cannot spare its rows stays whole
    in training and is named in ``unvalidated``, so the run can say which classes
    the validation scores leave out. The same seed gives the same split, so a
    resumed run validates on the same rows. The rows come from the training
    snapshot alone, which the validate step screens against the golden set: golden
    rows never pick a checkpoint or stop training.
    """
    import random

    generator = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    train: list[int] = []
    validation: list[int] = []
    unvalidated: list[int] = []
    for label in sorted(by_class):
        positions = by_class[label]
        generator.shuffle(positions)
        held = validation_rows_for_class(len(positions), fraction, min_per_class)
        if held == 0 and fraction > 0:
            unvalidated.append(label)
        validation.extend(positions[:held])
        train.extend(positions[held:])
    return ValidationSplit(sorted(train), sorted(validation), tuple(unvalidated))
