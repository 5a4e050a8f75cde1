"""Turning labelled text into tokenised examples for the Trainer."""

from __future__ import annotations

from collections.abc import Sequence
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


def split_validation(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row positions for training and for validation: ``fraction`` of each class, chosen with ``seed``.

    Stratified, so a small class is represented in both; a class too small to
    spare a row (``fraction × count`` rounds to 0) stays whole in training. The
    same seed gives the same split, so a resumed run validates on the same rows.
    """
    import random

    generator = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    train: list[int] = []
    validation: list[int] = []
    for label in sorted(by_class):
        positions = by_class[label]
        generator.shuffle(positions)
        held = min(int(fraction * len(positions) + 0.5), len(positions) - 1)
        validation.extend(positions[:held])
        train.extend(positions[held:])
    return sorted(train), sorted(validation)
