"""The recipe on the tiny BERT: CPU bf16 autocast runs, early stopping stops and keeps the best epoch,
a run killed after its best epoch resumes with its patience counter and best checkpoint, and the same
holds when validation is scored every N steps rather than every epoch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from bertloop.core.config import PlatformConfig
from modeling.hardware import Capabilities, HardwarePlan
from tests.conftest import synthetic_rows
from training.callbacks import ReportMetrics
from training.finetune import TrainOutcome
from training.stopping import STOPPED_EARLY

BF16_CPU = Capabilities(cuda_available=False, bf16_supported=False, cpu_bf16_supported=True)


class RecordAutocast(TrainerCallback):
    """Notes, on every forward pass of training, whether CPU autocast is on and at which type."""

    def __init__(self) -> None:
        self.seen: set[tuple[bool, Any]] = set()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        import torch

        def record(*_: Any) -> None:
            self.seen.add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

        # On the encoder, called inside the model's forward, which accelerate wraps in autocast.
        model.base_model.register_forward_pre_hook(record)


class Killed(Exception):
    """What ends the training process at the kill point, in place of SIGKILL."""


class KillAtStep(TrainerCallback):
    """Ends training at ``step``, between two checkpoints, as a kill of the train task would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def _fine_tune(config: PlatformConfig, tmp_path: Path, rows_per_class: int, **settings: Any):
    from training.finetune import fine_tune

    frame = synthetic_rows(rows_per_class, seed=11)
    callbacks = settings.pop("callbacks", ())
    capabilities = settings.pop("capabilities", None)
    return fine_tune(
        frame["text"].tolist(),
        frame["label"].tolist(),
        config.data.labels,
        Path(config.training.base_checkpoint),
        tmp_path / "checkpoints",
        tmp_path / "model",
        config.training.model_copy(update=settings),
        callbacks=callbacks,
        capabilities=capabilities,
    )


def test_a_cpu_with_bf16_trains_under_bf16_autocast_and_serves_fp32(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from modeling.runner import ClassifierRunner

    recorder = RecordAutocast()
    outcome = _fine_tune(platform_config, tmp_path, 8, callbacks=[recorder], capabilities=BF16_CPU)
    assert (outcome.device, outcome.precision) == ("cpu", "bf16")
    assert (True, torch.bfloat16) in recorder.seen  # Trainer's forward passes ran under CPU autocast
    weights = load_file(Path(outcome.model_dir) / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # master weights stay fp32
    runner = ClassifierRunner.from_directory(outcome.model_dir, max_length=32)
    assert runner.plan == HardwarePlan("cpu", "fp32")
    scored = runner.score(["goal match team", "chip cloud code"])
    assert scored.logits.dtype.name == "float32" and len(scored.labels) == 2


def test_training_stops_when_validation_stops_improving_and_keeps_the_best_epoch(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    outcome = _fine_tune(
        platform_config, tmp_path, 30, epochs=20, learning_rate=0.01, warmup_ratio=0.0, patience=2
    )
    assert outcome.stop_reason == STOPPED_EARLY and outcome.epochs_run < 20
    scores = [metric for _, _, metric in outcome.learning_curve]
    assert len(scores) == outcome.epochs_run  # one validation score per epoch
    assert outcome.best_metric == max(scores) and outcome.best_step is not None
    assert outcome.best_step < outcome.global_step  # the last epochs did not improve
    # The kept model is the best checkpoint's, not the last step's.
    kept = load_file(Path(outcome.model_dir) / "model.safetensors")
    best = load_file(tmp_path / "checkpoints" / f"checkpoint-{outcome.best_step}" / "model.safetensors")
    last = load_file(tmp_path / "checkpoints" / f"checkpoint-{outcome.global_step}" / "model.safetensors")
    assert all((kept[key] == best[key]).all() for key in best)
    assert any((kept[key] != last[key]).any() for key in last)
    assert outcome.recipe["recipe.learning_rate"] == "0.01" and outcome.recipe["recipe.batch_size"] == "8"
    # The patience counter travels in the checkpoint, so a run killed and resumed goes on counting.
    state = json.loads(
        (tmp_path / "checkpoints" / f"checkpoint-{outcome.global_step}" / "trainer_state.json").read_text()
    )
    stopping = state["stateful_callbacks"]["EarlyStoppingCallback"]
    assert stopping["attributes"]["early_stopping_patience_counter"] == 2
    assert state["best_global_step"] == outcome.best_step


def test_a_run_killed_after_its_best_epoch_resumes_counting_patience_and_keeps_the_best_checkpoint(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:

    settings = {"epochs": 20, "learning_rate": 0.01, "warmup_ratio": 0.0, "patience": 2}
    whole = _fine_tune(platform_config, tmp_path / "whole", 30, **settings)
    assert whole.stop_reason == STOPPED_EARLY and whole.epochs_run == int(whole.epochs_run)
    per_epoch = whole.global_step // int(whole.epochs_run)
    # Patience 2 stops two epochs after the best one. The kill falls in the middle of the last
    # epoch, so the newest complete checkpoint holds one epoch without improvement and points at
    # the best checkpoint behind it: a resume that lost either would train on or keep other weights.
    assert whole.best_step == whole.global_step - 2 * per_epoch and per_epoch >= 2
    resumed = _kill_and_retry(
        platform_config, tmp_path, whole, whole.global_step - per_epoch // 2, whole.global_step - per_epoch,
        settings,
    )  # fmt: skip
    assert resumed.epochs_run == whole.epochs_run


def test_on_a_step_schedule_patience_counts_scores_and_a_killed_run_resumes_between_them(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:
    """Validation every 6 steps in epochs of 11 (81 rows in batches of 8): scores fall mid-epoch."""

    every, patience = 6, 3
    # fp32: under CPU bf16 autocast the tiny model's run is not the same twice, and now and then it
    # levelled off at its first score, which left nothing to keep but the first checkpoint.
    settings = {"epochs": 20, "learning_rate": 0.01, "warmup_ratio": 0.0, "patience": patience,
                "validation_every": every, "precision": "fp32"}  # fmt: skip
    reported: list[tuple[dict[str, float], int]] = []
    whole = _fine_tune(
        platform_config, tmp_path / "whole", 30,
        callbacks=[ReportMetrics(lambda metrics, step: reported.append((metrics, step)))], **settings,
    )  # fmt: skip
    assert whole.stop_reason == STOPPED_EARLY and whole.recipe["recipe.validation_every"] == str(every)
    steps = [step for _, step, _ in whole.learning_curve]
    assert steps == list(range(every, whole.global_step + 1, every))  # a score every 6 steps, to the end
    assert any(epoch != int(epoch) for epoch, _, _ in whole.learning_curve)  # not only at epoch ends
    # Patience counts scores: the run stops three scores after the best one, which it keeps.
    assert whole.best_step == whole.global_step - patience * every
    scores = [metric for _, _, metric in whole.learning_curve]
    assert whole.best_metric == max(scores) and scores[0] < whole.best_metric  # it learnt, then levelled
    assert whole.best_step % 11 != 0  # the kept weights are from the middle of an epoch
    assert f"kept step {whole.best_step}, the best of {len(steps)} validation scores" in whole.stop_note
    # The learning curve the MLflow reporter received is the same, step for step.
    logged = [(step, metrics["validation_macro_f1"]) for metrics, step in reported
              if "validation_macro_f1" in metrics]  # fmt: skip
    assert logged == [(step, metric) for _, step, metric in whole.learning_curve]

    # Killed between the last two scores: the newest checkpoint holds two scores without improvement
    # and points at the best one behind it; the resumed run must stop at the same step and keep it.
    _kill_and_retry(
        platform_config, tmp_path, whole, whole.global_step - every // 2, whole.global_step - every, settings
    )


def test_the_arguments_group_by_length_and_pick_the_best_epoch(platform_config: PlatformConfig) -> None:
    from training.finetune import training_arguments
    from training.recipe import choose_recipe

    settings = platform_config.training
    recipe = choose_recipe(settings, [0, 1, 2] * 10, 3, "cpu", validates=True)
    arguments = training_arguments(settings, HardwarePlan("cpu", "bf16"), recipe, Path("c"))
    assert arguments.train_sampling_strategy == "group_by_length"
    assert arguments.bf16 and arguments.use_cpu and not arguments.fp16
    assert arguments.load_best_model_at_end and arguments.metric_for_best_model == "macro_f1"
    assert arguments.eval_strategy == arguments.save_strategy == "epoch"
    assert arguments.restore_callback_states_from_checkpoint
    unvalidated = choose_recipe(settings, [0, 1, 2] * 10, 3, "cpu", validates=False)
    plain = training_arguments(settings, HardwarePlan("cpu", "fp32"), unvalidated, Path("c"))
    assert plain.eval_strategy == "no" and not plain.load_best_model_at_end


def test_a_step_schedule_saves_a_checkpoint_at_every_score(platform_config: PlatformConfig) -> None:
    from training.finetune import training_arguments
    from training.recipe import choose_recipe

    settings = platform_config.training.model_copy(update={"validation_every": 250})
    recipe = choose_recipe(settings, [0, 1, 2] * 10, 3, "cpu", validates=True)
    arguments = training_arguments(settings, HardwarePlan("cpu", "fp32"), recipe, Path("c"))
    assert arguments.eval_strategy == arguments.save_strategy == "steps"
    assert arguments.eval_steps == arguments.save_steps == 250
    assert arguments.load_best_model_at_end and arguments.save_total_limit == 2


def test_imbalanced_classes_train_with_a_weighted_loss(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:
    from training.finetune import fine_tune

    frame = synthetic_rows(20, seed=12)
    skewed = (
        frame.groupby("label")
        .head(20)
        .pipe(lambda rows: rows[(rows["label"] == "sport") | (rows.groupby("label").cumcount() < 4)])
    )
    outcome = fine_tune(
        skewed["text"].tolist(),
        skewed["label"].tolist(),
        platform_config.data.labels,
        Path(platform_config.training.base_checkpoint),
        tmp_path / "checkpoints",
        tmp_path / "model",
        platform_config.training,
    )
    assert outcome.recipe["recipe.class_weights"] != "none"
    assert math.isfinite(outcome.train_loss)


def _kill_and_retry(
    platform_config: PlatformConfig,
    tmp_path: Path,
    whole: TrainOutcome,
    killed_at: int,
    resumes_from: int,
    settings: dict[str, Any],
) -> TrainOutcome:
    """Train again under ``tmp_path/retried``, killed at step ``killed_at``, then retry: the retry must
    resume from ``checkpoint-<resumes_from>``, stop where ``whole`` stopped and keep its best weights."""
    from safetensors.torch import load_file

    with pytest.raises(Killed):
        _fine_tune(platform_config, tmp_path / "retried", 30, callbacks=[KillAtStep(killed_at)], **settings)
    resumed = _fine_tune(platform_config, tmp_path / "retried", 30, **settings)
    assert resumed.resumed_from is not None
    assert resumed.resumed_from.endswith(f"checkpoint-{resumes_from}")
    assert (resumed.stop_reason, resumed.global_step) == (STOPPED_EARLY, whole.global_step)
    assert (resumed.best_step, resumed.best_metric) == (whole.best_step, whole.best_metric)
    kept = load_file(tmp_path / "retried" / "model" / "model.safetensors")
    best = load_file(
        tmp_path / "retried" / "checkpoints" / f"checkpoint-{whole.best_step}" / "model.safetensors"
    )
    assert all((kept[key] == best[key]).all() for key in best)
    return resumed
