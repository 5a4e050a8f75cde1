"""Batched prediction with a fine-tuned classifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Predictions:
    labels: list[str]
    confidences: list[float]


def predict(
    model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int
) -> Predictions:
    """Label names (from the model's own id2label) and the winning probability per text."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    labels: list[str] = []
    confidences: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            encoded = tokenizer(
                chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            probabilities = model(**encoded).logits.float().softmax(dim=-1)
            best = probabilities.max(dim=-1)
            labels.extend(model.config.id2label[int(index)] for index in best.indices)
            confidences.extend(float(value) for value in best.values)
    return Predictions(labels=labels, confidences=confidences)


def load_classifier(model_dir: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, AutoTokenizer.from_pretrained(model_dir)
