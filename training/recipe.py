"""The fine-tuning recipe: batch size, learning rates, epochs and class weights from the data and device.

Pure functions: the counts and the device go in, a :class:`Recipe` comes out with
a reason for every choice. A setting given in the configuration is used as given;
``auto`` settings follow these rules:

- **batch size**: training rows / 32, rounded down to a power of two (so an epoch
  is at least ~32 optimiser steps), between 16 (32 on a GPU, which small batches
  leave idle) and ``training.max_auto_batch_size`` (256). The batch is per process;
  the learning rate follows the global batch (per process x processes).
- **learning rate**: ``3e-4 x sqrt(global batch / 256)``, the square-root rule for
  Adam-type optimisers, from the point calibrated on banking77 (10,003 rows, 77
  intents): batch 256 at 3e-4 reached 92.8% test accuracy where batch 16 at 5e-5
  reached 67.3%. The classification head, freshly initialised, learns
  ``training.head_learning_rate_multiplier`` (10) times faster than the encoder.
- **epochs** (a ceiling: early stopping may end sooner): 2 at batch 16 (the old
  default, so small data trains no longer than before), 2 more per doubling of
  the batch (fewer, larger steps need more passes), at most 10 (banking77's
  calibration: 10 epochs at batch 256).
- **class weights**: inverse class frequency ("balanced") when the largest
  class has more than ``training.class_weight_imbalance`` (3) times the rows of
  the smallest; none otherwise.
- **validation schedule** (with early stopping): once an epoch, at its end, when
  an epoch has at most 1,000 optimiser steps; a longer epoch is scored every
  ``ceil(steps / k)`` steps, ``k = ceil(steps / 1,000)`` at most 4. Patience
  counts scores, so on a long epoch per-epoch scoring would train up to
  ``patience`` whole epochs past the best weights and keep or resume nothing in
  between; a score (and a checkpoint) about every 1,000 steps bounds both. Each
  score is a forward pass over the validation rows, about 4% of an epoch's
  compute at ``validation_fraction`` 0.1 (a ninth as many rows, no backward pass),
  so at most 4 an epoch keep it near 15% however long the epoch. banking77 (36
  steps an epoch at batch 256) keeps per-epoch scoring.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bertloop.core.config import TrainingConfig

REFERENCE_BATCH = 256
REFERENCE_LEARNING_RATE = 3e-4
ROWS_PER_STEP_TARGET = 32  # an auto batch leaves at least this many steps in an epoch
MIN_BATCH = {"cpu": 16, "cuda": 32}
MIN_EPOCHS, MAX_EPOCHS = 2.0, 10.0
LONG_EPOCH_STEPS = 1_000  # an epoch of more optimiser steps is validated within, not only at its end
MAX_VALIDATIONS_PER_EPOCH = 4  # each is a pass over the validation rows; more would cost more than it saves
# Trainer's names for these evaluation strategies.
PER_EPOCH: Literal["epoch"] = "epoch"
NOT_VALIDATED: Literal["no"] = "no"


@dataclass(frozen=True)
class Recipe:
    batch_size: int  # per process
    global_batch_size: int
    learning_rate: float  # the encoder's
    head_learning_rate: float
    epochs: float  # at most
    warmup_ratio: float
    class_weights: tuple[float, ...] | None  # per label id; None: an unweighted loss
    # Optimiser steps between validation scores (and checkpoints), or at each epoch's end, or never
    # (no early stopping); patience counts these scores.
    validation_every: int | Literal["epoch", "no"]
    reasons: tuple[str, ...]

    def params(self) -> dict[str, str]:
        """The values used, as MLflow params (``recipe.*``)."""
        values: dict[str, Any] = {
            "batch_size": self.batch_size,
            "global_batch_size": self.global_batch_size,
            "learning_rate": f"{self.learning_rate:.3g}",
            "head_learning_rate": f"{self.head_learning_rate:.3g}",
            "epochs": self.epochs,
            "warmup_ratio": self.warmup_ratio,
            "class_weights": "none"
            if self.class_weights is None
            else ",".join(f"{weight:.3g}" for weight in self.class_weights),
            "validation_every": self.validation_every,
        }
        return {f"recipe.{key}": str(value) for key, value in values.items()}


def auto_batch_size(train_rows: int, device: str, world_size: int, cap: int) -> int:
    """The per-process batch: a power of two near rows / 32 across all processes, within the bounds."""
    floor = MIN_BATCH.get(device, MIN_BATCH["cpu"])
    wanted = max(1, train_rows // (ROWS_PER_STEP_TARGET * world_size))
    power = 2 ** int(math.log2(wanted))
    return max(1, min(max(power, floor), cap))


def scaled_learning_rate(global_batch: int) -> float:
    return REFERENCE_LEARNING_RATE * math.sqrt(global_batch / REFERENCE_BATCH)


def auto_epochs(global_batch: int) -> float:
    doublings = math.log2(max(global_batch, MIN_BATCH["cpu"]) / MIN_BATCH["cpu"])
    return min(MIN_EPOCHS + 2.0 * doublings, MAX_EPOCHS)


def steps_per_epoch(train_rows: int, batch: int, world_size: int) -> int:
    """Optimiser steps in one pass: each process takes its shard (rounded up) in batches of ``batch``."""
    return max(1, math.ceil(math.ceil(train_rows / world_size) / batch))


def auto_validation_steps(epoch_steps: int) -> int | None:
    """Optimiser steps between validation scores for an epoch of ``epoch_steps``; None: once, at its end.

    A long epoch is cut into the fewest equal parts of at most ``LONG_EPOCH_STEPS``,
    but never more than ``MAX_VALIDATIONS_PER_EPOCH``; past that the parts grow.
    """
    if epoch_steps <= LONG_EPOCH_STEPS:
        return None
    parts = min(math.ceil(epoch_steps / LONG_EPOCH_STEPS), MAX_VALIDATIONS_PER_EPOCH)
    return math.ceil(epoch_steps / parts)


def class_weights(
    label_ids: Sequence[int], label_count: int, imbalance_limit: float | None
) -> tuple[tuple[float, ...] | None, float]:
    """Balanced weights (rows / (classes x class rows)) past the imbalance limit, and the imbalance.

    The imbalance is largest / smallest class among the classes present; a label
    with no rows gets weight 1 (it contributes no loss either way).
    """
    counts = Counter(label_ids)
    if not counts:
        return None, 1.0
    imbalance = max(counts.values()) / min(counts.values())
    if imbalance_limit is None or imbalance <= imbalance_limit:
        return None, imbalance
    total, present = len(label_ids), len(counts)
    weights = tuple(
        total / (present * counts[label]) if counts[label] else 1.0 for label in range(label_count)
    )
    return weights, imbalance


def choose_recipe(
    settings: TrainingConfig,
    train_labels: Sequence[int],
    label_count: int,
    device: str,
    *,
    validates: bool,
) -> Recipe:
    """Resolve every ``auto`` setting for ``len(train_labels)`` training rows on ``device``.

    ``validates``: a validation split is scored while training (early stopping), so it needs a schedule.
    """
    reasons: list[str] = []
    world = settings.world_size
    # `auto` or a number (model_copy(update=...) may leave an int where a float is declared).
    if not isinstance(settings.batch_size, str):
        batch = int(settings.batch_size)
    else:
        batch = auto_batch_size(len(train_labels), device, world, settings.max_auto_batch_size)
        bounds = f"[{MIN_BATCH.get(device, MIN_BATCH['cpu'])}, {settings.max_auto_batch_size}]"
        reasons.append(f"batch {batch} per process: {len(train_labels)} rows / {ROWS_PER_STEP_TARGET} "
                       f"as a power of two in {bounds}")  # fmt: skip
    global_batch = batch * world
    if not isinstance(settings.learning_rate, str):
        learning_rate = float(settings.learning_rate)
    else:
        learning_rate = scaled_learning_rate(global_batch)
        reasons.append(f"learning rate {learning_rate:.3g}: {REFERENCE_LEARNING_RATE:g} x "
                       f"sqrt({global_batch} / {REFERENCE_BATCH})")  # fmt: skip
    if not isinstance(settings.epochs, str):
        epochs = float(settings.epochs)
    else:
        epochs = auto_epochs(global_batch)
        reasons.append(f"at most {epochs:g} epochs for a global batch of {global_batch}")
    weights, imbalance = class_weights(train_labels, label_count, settings.class_weight_imbalance)
    if weights is not None:
        reasons.append(f"class-weighted loss: the classes are {imbalance:.1f}x imbalanced "
                       f"(limit {settings.class_weight_imbalance:g})")  # fmt: skip
    validation_every, reason = _validation_schedule(
        settings, steps_per_epoch(len(train_labels), batch, world), validates
    )
    if reason:
        reasons.append(reason)
    return Recipe(
        batch_size=batch,
        global_batch_size=global_batch,
        learning_rate=learning_rate,
        head_learning_rate=learning_rate * settings.head_learning_rate_multiplier,
        epochs=epochs,
        warmup_ratio=settings.warmup_ratio,
        class_weights=weights,
        validation_every=validation_every,
        reasons=tuple(reasons),
    )


def _validation_schedule(
    settings: TrainingConfig, epoch_steps: int, validates: bool
) -> tuple[int | Literal["epoch", "no"], str]:
    """When validation is scored, and why (empty where the setting was given)."""
    if not validates:
        return NOT_VALIDATED, ""
    if settings.validation_every == PER_EPOCH:
        return PER_EPOCH, ""
    if not isinstance(settings.validation_every, str):
        return int(settings.validation_every), ""
    every = auto_validation_steps(epoch_steps)
    if every is None:
        return PER_EPOCH, (
            f"validation scored once an epoch: an epoch is {epoch_steps} steps (at most {LONG_EPOCH_STEPS:,})"
        )
    scores = math.ceil(epoch_steps / every)
    return every, (
        f"validation scored every {every} steps, {scores} times an epoch of {epoch_steps} steps "
        f"(over {LONG_EPOCH_STEPS:,}); patience {settings.patience} counts these scores"
    )


def parameter_groups(
    named_parameters: Iterable[tuple[str, Any]],
    encoder_prefix: str,
    recipe: Recipe,
    weight_decay: float,
) -> list[dict[str, Any]]:
    """Optimiser groups: encoder and head at their own learning rates, biases and norms without decay.

    The head is every parameter outside ``encoder_prefix`` (``bert.`` for BERT):
    the classifier that ``from_pretrained`` initialised at random.
    """
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        head = not name.startswith(f"{encoder_prefix}.")
        decays = parameter.ndim >= 2  # weight matrices; not biases or LayerNorm scales
        groups.setdefault((head, decays), []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": recipe.head_learning_rate if head else recipe.learning_rate,
            "weight_decay": weight_decay if decays else 0.0,
        }
        for (head, decays), parameters in sorted(groups.items(), key=lambda item: item[0])
    ]
