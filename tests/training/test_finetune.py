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
    assert (outcome.train_examples, outcome.validation_examples) == (27, 3)  # one row per class held out
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
    _, held = split_validation(labels, settings.validation_fraction, settings.seed)
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
    train, validation = split_validation(labels, 0.1, seed=7)
    assert sorted(train + validation) == list(range(72)) and not set(train) & set(validation)
    held = [labels[i] for i in validation]
    assert (held.count(0), held.count(1), held.count(2)) == (5, 2, 0)  # 2 rows cannot spare 0.2 of one
    assert split_validation(labels, 0.1, seed=7) == (train, validation)
    assert split_validation(labels, 0.1, seed=8) != (train, validation)
    assert split_validation([0, 0, 1], 0.0, seed=1) == ([0, 1, 2], [])


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
