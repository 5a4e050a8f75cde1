"""The recipe's rules, as pure functions: batch, learning rates, epochs, class weights, validation schedule,
optimiser groups."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bertloop.core.config import TrainingConfig
from training.recipe import (
    auto_batch_size,
    auto_epochs,
    auto_validation_steps,
    choose_recipe,
    class_weights,
    parameter_groups,
    scaled_learning_rate,
    steps_per_epoch,
)

BANKING77_TRAIN_ROWS = 9_003  # 10,003 rows less a tenth held out for validation


@pytest.mark.parametrize(
    ("rows", "device", "world", "batch"),
    [
        (300, "cpu", 1, 16),  # small data keeps the old default batch
        (300, "cuda", 1, 32),  # a GPU is left idle by tiny batches
        (1_024, "cpu", 1, 32),
        (5_000, "cpu", 1, 128),
        (BANKING77_TRAIN_ROWS, "cpu", 1, 256),  # the calibrated point
        (1_000_000, "cuda", 1, 256),  # the cap
        (BANKING77_TRAIN_ROWS, "cuda", 2, 128),  # per process: the global batch stays 256
    ],
)
def test_the_batch_grows_with_the_data_up_to_the_cap(rows: int, device: str, world: int, batch: int) -> None:
    assert auto_batch_size(rows, device, world, cap=256) == batch


def test_the_learning_rate_follows_the_square_root_of_the_batch_from_the_banking77_point() -> None:
    assert scaled_learning_rate(256) == pytest.approx(3e-4)
    assert scaled_learning_rate(64) == pytest.approx(1.5e-4)
    assert scaled_learning_rate(16) == pytest.approx(7.5e-5)


def test_epochs_grow_with_the_batch_and_small_data_keeps_two() -> None:
    assert [auto_epochs(batch) for batch in (8, 16, 32, 64, 128, 256, 1024)] == [2, 2, 4, 6, 8, 10, 10]


@pytest.mark.parametrize(
    ("rows", "batch", "world", "steps"),
    [(81, 16, 1, 6), (BANKING77_TRAIN_ROWS, 256, 1, 36), (100, 8, 2, 7), (101, 8, 2, 7), (3, 16, 1, 1)],
)
def test_an_epoch_is_each_processes_shard_in_batches(rows: int, batch: int, world: int, steps: int) -> None:
    assert steps_per_epoch(rows, batch, world) == steps


@pytest.mark.parametrize(
    ("epoch_steps", "every"),
    [
        (36, None),  # banking77: once an epoch
        (1_000, None),
        (1_001, 501),  # just too long: scored twice an epoch, not every step past 1,000
        (2_000, 1_000),
        (2_500, 834),  # three parts of at most 1,000
        (4_000, 1_000),
        (4_001, 1_001),  # four scores an epoch at most: the parts grow past 1,000
        (40_000, 10_000),
    ],
)
def test_a_long_epoch_is_validated_about_every_thousand_steps_and_at_most_four_times(
    epoch_steps: int, every: int | None
) -> None:
    assert auto_validation_steps(epoch_steps) == every
    if every is not None:
        assert 2 <= math.ceil(epoch_steps / every) <= 4


def test_large_data_is_validated_every_n_steps_and_says_why() -> None:
    labels = [index % 4 for index in range(1_000_000)]
    recipe = choose_recipe(TrainingConfig(), labels, 4, "cuda", validates=True)
    assert recipe.batch_size == 256 and recipe.validation_every == 977  # 3,907 steps an epoch, 4 parts
    assert recipe.params()["recipe.validation_every"] == "977"
    (reason,) = [reason for reason in recipe.reasons if reason.startswith("validation")]
    assert "every 977 steps, 4 times an epoch of 3907 steps" in reason and "patience 2 counts" in reason
    # Without early stopping nothing is scored while training, and no schedule is claimed.
    plain = choose_recipe(TrainingConfig(), labels, 4, "cuda", validates=False)
    assert plain.validation_every == "no" and not any(r.startswith("validation") for r in plain.reasons)
    assert plain.params()["recipe.validation_every"] == "no"


def test_classes_are_weighted_only_past_the_imbalance_limit() -> None:
    balanced = [0] * 30 + [1] * 20 + [2] * 15  # 2x
    assert class_weights(balanced, 3, imbalance_limit=3.0) == (None, 2.0)
    skewed = [0] * 80 + [1] * 10 + [2] * 10  # 8x
    weights, imbalance = class_weights(skewed, 4, imbalance_limit=3.0)
    assert imbalance == 8.0 and weights is not None
    assert weights[:3] == pytest.approx((100 / 240, 100 / 30, 100 / 30)) and weights[3] == 1.0
    # Each class then carries the same total weight in the loss.
    assert 80 * weights[0] == pytest.approx(10 * weights[1])
    assert class_weights(skewed, 3, imbalance_limit=None)[0] is None


def test_auto_settings_on_banking77_reproduce_the_calibrated_run() -> None:
    labels = [index % 77 for index in range(BANKING77_TRAIN_ROWS)]
    recipe = choose_recipe(TrainingConfig(), labels, 77, "cpu", validates=True)
    assert (recipe.batch_size, recipe.learning_rate, recipe.epochs) == (256, pytest.approx(3e-4), 10)
    assert recipe.head_learning_rate == pytest.approx(3e-3) and recipe.class_weights is None
    assert recipe.validation_every == "epoch"  # 36 steps an epoch: scored at its end, as calibrated
    assert len(recipe.reasons) == 4 and "an epoch is 36 steps" in recipe.reasons[-1]
    params = recipe.params()
    assert params["recipe.batch_size"] == "256" and params["recipe.learning_rate"] == "0.0003"
    assert params["recipe.validation_every"] == "epoch"


def test_explicit_settings_are_used_as_given() -> None:
    settings = TrainingConfig(
        batch_size=8, learning_rate=1e-4, epochs=1, head_learning_rate_multiplier=1, validation_every=5
    )
    recipe = choose_recipe(settings, [0, 1] * 50, 2, "cpu", validates=True)
    assert (recipe.batch_size, recipe.learning_rate, recipe.head_learning_rate, recipe.epochs) == (
        8,
        1e-4,
        1e-4,
        1,
    )
    assert recipe.validation_every == 5 and recipe.params()["recipe.validation_every"] == "5"
    assert recipe.reasons == ()
    per_epoch = settings.model_copy(update={"validation_every": "epoch"})
    assert choose_recipe(per_epoch, [0, 1] * 50, 2, "cpu", validates=True).validation_every == "epoch"


def test_the_learning_rate_follows_the_global_batch_under_ddp() -> None:
    settings = TrainingConfig(batch_size=64, processes_per_node=4)
    recipe = choose_recipe(settings, [0, 1] * 50, 2, "cuda", validates=True)
    assert recipe.global_batch_size == 256 and recipe.learning_rate == pytest.approx(3e-4)


def test_the_head_learns_faster_and_biases_and_norms_do_not_decay() -> None:
    recipe = choose_recipe(TrainingConfig(batch_size=16), [0, 1] * 50, 2, "cpu", validates=True)

    def parameter(ndim: int) -> SimpleNamespace:
        return SimpleNamespace(ndim=ndim, requires_grad=True)

    named = [
        ("bert.encoder.layer.0.weight", parameter(2)),
        ("bert.encoder.layer.0.bias", parameter(1)),
        ("bert.embeddings.LayerNorm.weight", parameter(1)),
        ("classifier.weight", parameter(2)),
        ("classifier.bias", parameter(1)),
        ("bert.frozen.weight", SimpleNamespace(ndim=2, requires_grad=False)),
    ]
    groups = parameter_groups(named, "bert", recipe, weight_decay=0.01)
    summary = sorted((len(group["params"]), group["lr"], group["weight_decay"]) for group in groups)
    lr = recipe.learning_rate
    assert summary == sorted([(2, lr, 0.0), (1, lr, 0.01), (1, 10 * lr, 0.0), (1, 10 * lr, 0.01)])
    assert math.isclose(recipe.head_learning_rate, 10 * lr)
