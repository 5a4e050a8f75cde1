"""The class-weighted cross-entropy the recipe switches on for imbalanced data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class WeightedCrossEntropy:
    """Trainer's ``compute_loss_func``: cross-entropy with a weight per class (the recipe's class weights)."""

    def __init__(self, weights: Sequence[float]):
        import torch

        self.weights = torch.tensor(list(weights), dtype=torch.float32)

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        import torch.nn.functional as functional

        logits = outputs["logits"].float()  # in fp32 under autocast, like the model's own loss
        return functional.cross_entropy(logits, labels, weight=self.weights.to(logits.device))
