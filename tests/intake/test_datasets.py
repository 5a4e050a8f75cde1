"""Loading the training snapshot: earlier batches mixed in at the configured fraction."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertloop.core.config import PlatformConfig
from tests.conftest import synthetic_rows


def test_earlier_data_is_mixed_in_at_the_configured_fraction(
    platform_config: PlatformConfig, tmp_path: Path
) -> None:
    from intake.datasets import load_training_frame

    earlier, newest = tmp_path / "earlier.csv", tmp_path / "newest.csv"
    synthetic_rows(20, seed=31).to_csv(earlier, index=False)  # 60 rows
    synthetic_rows(4, seed=32, exclude=set(pd.read_csv(earlier)["text"])).to_csv(
        newest, index=False
    )  # 12 rows
    mixed = platform_config.model_copy(
        update={"training": platform_config.training.model_copy(update={"earlier_data_fraction": 0.25})}
    )
    frame = load_training_frame(mixed, [earlier, newest], newest=newest)
    assert len(frame) == 15 + 12
    assert set(pd.read_csv(newest)["text"]) <= set(frame["text"])  # the new data is always whole
    assert len(load_training_frame(platform_config, [earlier, newest], newest=newest)) == 72
