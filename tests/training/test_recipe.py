"""The recipe's rules, as pure functions: batch, learning rates, epochs, class weights, optimiser groups."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bertloop.core.config import TrainingConfig
from training.recipe import (
    auto_batch_size,
    auto_epochs,
    choose_recipe,
    class_weights,
    parameter_groups,
    scaled_learning_rate,
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
    recipe = choose_recipe(TrainingConfig(), [index % 77 for index in range(BANKING77_TRAIN_ROWS)], 77, "cpu")
    assert (recipe.batch_size, recipe.learning_rate, recipe.epochs) == (256, pytest.approx(3e-4), 10)
    assert recipe.head_learning_rate == pytest.approx(3e-3) and recipe.class_weights is None
    assert len(recipe.reasons) == 3
    params = recipe.params()
    assert params["recipe.batch_size"] == "256" and params["recipe.learning_rate"] == "0.0003"


def test_explicit_settings_are_used_as_given() -> None:
    settings = TrainingConfig(batch_size=8, learning_rate=1e-4, epochs=1, head_learning_rate_multiplier=1)
    recipe = choose_recipe(settings, [0, 1] * 50, 2, "cpu")
    assert (recipe.batch_size, recipe.learning_rate, recipe.head_learning_rate, recipe.epochs) == (
        8,
        1e-4,
        1e-4,
        1,
    )
    assert recipe.reasons == ()


def test_the_learning_rate_follows_the_global_batch_under_ddp() -> None:
    settings = TrainingConfig(batch_size=64, processes_per_node=4)
    recipe = choose_recipe(settings, [0, 1] * 50, 2, "cuda")
    assert recipe.global_batch_size == 256 and recipe.learning_rate == pytest.approx(3e-4)


def test_the_head_learns_faster_and_biases_and_norms_do_not_decay() -> None:
    recipe = choose_recipe(TrainingConfig(batch_size=16), [0, 1] * 50, 2, "cpu")

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
