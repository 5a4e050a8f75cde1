"""Fine-tuning on a tiny BERT: resuming from the last checkpoint, and seeding."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertloop.core.config import PlatformConfig
from tests.conftest import synthetic_rows


def test_training_resumes_from_the_last_checkpoint(
    platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from training.finetune import fine_tune

    frame = synthetic_rows(8, seed=3)
    arguments = dict(
        texts=frame["text"].tolist(),
        labels=frame["label"].tolist(),
        label_names=platform_config.data.labels,
        base_checkpoint=tiny_checkpoint,
        checkpoint_dir=tmp_path / "checkpoints",
        model_dir=tmp_path / "model",
    )
    first = fine_tune(settings=platform_config.training, **arguments)
    assert first.resumed_from is None and first.global_step == 3  # 24 rows / batch 8, one epoch
    longer = platform_config.training.model_copy(update={"epochs": 2.0})
    resumed = fine_tune(settings=longer, **arguments)
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-3")
    assert resumed.global_step == 6


def test_training_is_seeded(platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path) -> None:
    from training.finetune import fine_tune

    frame = synthetic_rows(8, seed=3)
    losses = []
    for attempt in range(2):
        losses.append(
            fine_tune(
                frame["text"].tolist(),
                frame["label"].tolist(),
                platform_config.data.labels,
                tiny_checkpoint,
                tmp_path / f"c{attempt}",
                tmp_path / f"m{attempt}",
                platform_config.training,
            ).train_loss
        )
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_the_temperature_is_fitted_on_held_out_rows_and_travels_with_the_model(
    platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from modeling.runner import ClassifierRunner
    from training.finetune import fine_tune

    frame = synthetic_rows(10, seed=4)  # 30 rows, 10 per class
    outcome = fine_tune(
        frame["text"].tolist(),
        frame["label"].tolist(),
        platform_config.data.labels,
        tiny_checkpoint,
        tmp_path / "checkpoints",
        tmp_path / "model",
        platform_config.training,
    )
    # 10% of 10 rows is 1, but each class gives at least training.validation_min_per_class (2).
    assert (outcome.train_examples, outcome.validation_examples) == (24, 6)
    assert outcome.unvalidated_classes == []
    assert outcome.temperature is not None
    runner = ClassifierRunner.from_directory(outcome.model_dir, max_length=32)
    assert runner.temperature == pytest.approx(outcome.temperature)
    # Without temperature scaling and early stopping nothing needs the held-out rows: all are trained on.
    off = platform_config.training.model_copy(update={"temperature_scaling": False, "patience": 0})
    plain = fine_tune(
        frame["text"].tolist(),
        frame["label"].tolist(),
        platform_config.data.labels,
        tiny_checkpoint,
        tmp_path / "checkpoints-off",
        tmp_path / "model-off",
        off,
    )
    assert (plain.train_examples, plain.validation_examples, plain.temperature) == (30, 0, None)
    assert ClassifierRunner.from_directory(plain.model_dir, max_length=32).temperature == 1.0


def test_the_temperature_is_fitted_on_each_rows_own_label_even_when_batches_are_grouped_by_length(
    platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Trainer's length-grouped evaluation sampler reorders the validation rows; fitted against the split's
    own label order, the temperature flattened the demo's confidences (T = 20 where 0.4 was right)."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from modeling.calibration import fit_temperature
    from training.data import encode_labels, split_validation
    from training.finetune import fine_tune

    frame = synthetic_rows(20, seed=8)  # 60 rows; 20% of each class held out
    # fp32, as the reference below scores: under bf16 autocast (a CPU with avx512_bf16 or AMX) the
    # random tiny model's near-tied logits fit a temperature far from the fp32 one, and the
    # comparison failed on such CPUs whatever the row order.
    settings = platform_config.training.model_copy(
        update={"validation_fraction": 0.2, "eval_batch_size": 2, "group_by_length": True, "epochs": 3.0,
                "precision": "fp32"}
    )  # fmt: skip
    outcome = fine_tune(
        frame["text"].tolist(), frame["label"].tolist(), platform_config.data.labels, tiny_checkpoint,
        tmp_path / "checkpoints", tmp_path / "model", settings,
    )  # fmt: skip
    labels = encode_labels(frame["label"].tolist(), platform_config.data.labels)
    held = split_validation(
        labels, settings.validation_fraction, settings.validation_min_per_class, settings.seed
    ).validation
    model = AutoModelForSequenceClassification.from_pretrained(str(outcome.model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(outcome.model_dir))
    texts = [frame["text"].iloc[i] for i in held]
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, truncation=True, return_tensors="pt")).logits.numpy()
    expected = fit_temperature(logits, [labels[i] for i in held])
    assert len(held) == 12 and outcome.temperature == pytest.approx(expected, rel=1e-3)
    assert np.isfinite(expected)


def test_the_validation_split_is_stratified_and_seeded() -> None:
    from training.data import split_validation

    labels = [0] * 50 + [1] * 20 + [2] * 2
    split = split_validation(labels, 0.1, 0, seed=7)  # no minimum: the fraction alone
    train, validation = split.train, split.validation
    assert sorted(train + validation) == list(range(72)) and not set(train) & set(validation)
    held = [labels[i] for i in validation]
    assert (held.count(0), held.count(1), held.count(2)) == (5, 2, 0)  # 2 rows cannot spare 0.2 of one
    assert split.unvalidated == (2,)
    assert split_validation(labels, 0.1, 0, seed=7) == split
    assert split_validation(labels, 0.1, 0, seed=8).validation != validation
    assert split_validation([0, 0, 1], 0.0, 2, seed=1) == split_validation([0, 0, 1], 0.0, 0, seed=1)
    nothing = split_validation([0, 0, 1], 0.0, 2, seed=1)
    assert (nothing.train, nothing.validation, nothing.unvalidated) == ([0, 1, 2], [], ())


@pytest.mark.parametrize(
    ("count", "fraction", "minimum", "held"),
    [
        (50, 0.1, 2, 5),  # the fraction, where it asks for more than the minimum
        (10, 0.1, 2, 2),  # 10% is 1 row: the minimum
        (5, 0.1, 2, 2),  # the smallest class a batch may have keeps 3 for training
        (4, 0.1, 2, 2),  # twice the minimum: 2 and 2
        (3, 0.1, 2, 0),  # cannot keep 2 for training: trained on whole
        (3, 0.45, 2, 0),  # even where the fraction alone would spare one
        (6, 0.1, 3, 3),
        (5, 0.1, 3, 0),
        (2, 0.1, 1, 1),  # a minimum of 1 holds one and keeps one
        (1, 0.1, 1, 0),
        (2, 0.45, 0, 1),  # no minimum: the fraction, rounded, leaving one for training
        (2, 0.1, 0, 0),
        (100, 0.0, 2, 0),  # no validation wanted: nothing held
    ],
)
def test_each_class_gives_at_least_the_minimum_when_it_keeps_as_many_for_training(
    count: int, fraction: float, minimum: int, held: int
) -> None:
    from training.data import validation_rows_for_class

    assert validation_rows_for_class(count, fraction, minimum) == held


def test_classes_too_small_for_the_minimum_stay_in_training_and_are_named() -> None:
    from training.data import split_validation

    labels = [0] * 50 + [1] * 20 + [2] * 3 + [3] * 4 + [4] * 10
    split = split_validation(labels, 0.1, 2, seed=7)
    held = [labels[i] for i in split.validation]
    assert [held.count(label) for label in range(5)] == [5, 2, 0, 2, 2]
    assert split.unvalidated == (2,)
    assert sorted(split.train + split.validation) == list(range(len(labels)))
    assert not set(split.train) & set(split.validation)
    assert {labels[i] for i in split.train} == {0, 1, 2, 3, 4}  # every class is still trained on
    assert split_validation(labels, 0.1, 2, seed=7) == split  # seeded: a resumed run validates the same


def test_a_class_too_small_to_validate_is_trained_on_and_named_on_the_run(
    platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from training.finetune import fine_tune

    frame = synthetic_rows(8, seed=3)
    frame = frame[(frame["label"] != "tech") | (frame.groupby("label").cumcount() < 3)]  # tech: 3 rows
    outcome = fine_tune(
        frame["text"].tolist(), frame["label"].tolist(), platform_config.data.labels, tiny_checkpoint,
        tmp_path / "checkpoints", tmp_path / "model", platform_config.training,
    )  # fmt: skip
    # sport and politics give 2 rows each; tech cannot give 2 and keep 2, so all 3 are trained on.
    assert (outcome.train_examples, outcome.validation_examples) == (15, 4)
    assert outcome.unvalidated_classes == ["tech"]
    assert outcome.reasons[0] == "validation scores leave out tech (fewer than 4 rows; trained on whole)"
    assert outcome.best_step is not None  # the other classes still pick the checkpoint


def test_a_checkpoint_cut_short_by_a_kill_is_skipped_on_resume(
    platform_config: PlatformConfig, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from training.callbacks import COMPLETE_MARKER
    from training.finetune import fine_tune

    frame = synthetic_rows(8, seed=3)
    arguments = dict(
        texts=frame["text"].tolist(),
        labels=frame["label"].tolist(),
        label_names=platform_config.data.labels,
        base_checkpoint=tiny_checkpoint,
        checkpoint_dir=tmp_path / "checkpoints",
        model_dir=tmp_path / "model",
    )
    first = fine_tune(settings=platform_config.training, **arguments)
    assert (tmp_path / "checkpoints" / "checkpoint-3" / COMPLETE_MARKER).is_file()
    # What a kill while writing checkpoint-6 leaves: the folder with only its config.
    cut = tmp_path / "checkpoints" / "checkpoint-6"
    cut.mkdir()
    (cut / "config.json").write_text((tmp_path / "checkpoints" / "checkpoint-3" / "config.json").read_text())
    longer = platform_config.training.model_copy(update={"epochs": 2.0})
    resumed = fine_tune(settings=longer, **arguments)
    assert first.global_step == 3
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-3")
    assert resumed.global_step == 6 and (cut / COMPLETE_MARKER).is_file()  # rewritten whole this time


def test_pruning_frees_a_finished_runs_checkpoints(tmp_path: Path) -> None:
    from training.checkpoints import prune

    folder = tmp_path / "checkpoints" / "checkpoint-3"
    folder.mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(b"x" * 1000)
    assert prune(tmp_path / "checkpoints") == 1000 and not (tmp_path / "checkpoints").exists()
    assert prune(tmp_path / "checkpoints") == 0
