"""Loading the golden set and the training snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bertloop.core.config import PlatformConfig
from intake.leakage import normalize_text
from intake.reader import UnreadableBatch, read_batch


class GoldenSetInvalid(ValueError):
    """The configured golden set cannot be used for evaluation."""


@dataclass(frozen=True)
class GoldenSet:
    frame: pd.DataFrame
    normalized_texts: set[str]


def load_golden_set(config: PlatformConfig) -> GoldenSet:
    path = config.data.golden_set
    text, label = config.data.text_column, config.data.label_column
    if not path.is_file():
        raise GoldenSetInvalid(f"golden set {path} does not exist; set data.golden_set to a labelled file")
    try:
        frame = read_batch(path, config.data.csv_delimiter)
    except UnreadableBatch as error:
        raise GoldenSetInvalid(f"golden set unreadable: {error}") from None
    missing = [column for column in (text, label) if column not in frame.columns]
    if missing:
        raise GoldenSetInvalid(f"golden set {path} lacks columns {missing}; found {list(frame.columns)}")
    no_slice = [column for column in config.gate.slice_columns if column not in frame.columns]
    if no_slice:
        raise GoldenSetInvalid(
            f"gate.slice_columns names {no_slice}, which golden set {path} lacks; "
            f"its columns are {list(frame.columns)}"
        )
    frame = frame.dropna(subset=[text, label])
    unknown = sorted(set(frame[label]) - set(config.data.labels))
    if unknown:
        raise GoldenSetInvalid(f"golden set {path} has labels {unknown} outside data.labels")
    if frame.empty:
        raise GoldenSetInvalid(f"golden set {path} has no usable rows")
    return GoldenSet(
        frame=frame.reset_index(drop=True), normalized_texts={normalize_text(t) for t in frame[text]}
    )


def load_training_frame(
    config: PlatformConfig, files: list[Path], newest: Path | None = None
) -> pd.DataFrame:
    """The batches of the snapshot; a text seen twice keeps its latest label.

    ``newest`` (the batch this run accepted, e.g. drift feedback) is always used
    whole; the earlier batches contribute ``training.earlier_data_fraction`` of
    their rows, sampled with the training seed.
    """
    text, label = config.data.text_column, config.data.label_column
    fraction = config.training.earlier_data_fraction
    frames = []
    for path in files:
        frame = read_batch(path, config.data.csv_delimiter)[[text, label]]
        if newest is not None and path.resolve() != newest.resolve() and fraction < 1:
            frame = frame.sample(frac=fraction, random_state=config.training.seed)
        frames.append(frame)
    if not frames:
        raise ValueError("the training snapshot is empty; accept at least one batch first")
    combined = pd.concat(frames, ignore_index=True)
    keys = combined[text].map(normalize_text)
    return combined.loc[~keys.duplicated(keep="last")].reset_index(drop=True)
