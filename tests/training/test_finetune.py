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
