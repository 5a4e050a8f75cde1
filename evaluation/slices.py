"""Slices of the golden set the gate judges separately: text length by default, and named columns.

A model can hold its aggregate score while failing the long articles or one
source; slices make that visible. Each slice is a name and the positions of its
golden items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bertloop.core.config import GateConfig

# More values than this is an identifier or free text, not a category: every slice would be too
# small to judge, and the report unreadable.
MAX_SLICE_VALUES = 50


def length_slices(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Short, medium and long by word count, cut at the golden set's own tertiles.

    The cut points come from the frozen golden set, so they are the same for
    every evaluation against it and each slice holds about a third of it.
    """
    words = np.array([len(text.split()) for text in texts])
    if len(words) == 0:
        return {}
    low, high = (int(x) for x in np.quantile(words, [1 / 3, 2 / 3]))
    slices = {
        f"length: short (≤{low} words)": np.flatnonzero(words <= low),
        f"length: medium ({low + 1}–{high} words)": np.flatnonzero((words > low) & (words <= high)),
        f"length: long (>{high} words)": np.flatnonzero(words > high),
    }
    return {name: members for name, members in slices.items() if len(members)}


def column_slices(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """One slice per value of each named categorical column; a missing value is its own slice."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"gate.slice_columns names {missing}, which the golden set lacks; "
            f"its columns are {list(frame.columns)}"
        )
    slices: dict[str, np.ndarray] = {}
    for column in columns:
        values = frame[column].astype("string").fillna("(missing)").to_numpy()
        distinct = len(set(values))
        if distinct > MAX_SLICE_VALUES:
            raise ValueError(
                f"gate.slice_columns: column {column!r} has {distinct} distinct values; a slice column "
                f"must be categorical (at most {MAX_SLICE_VALUES} values), e.g. a source or a language"
            )
        for value in sorted(set(values)):
            slices[f"{column}={value}"] = np.flatnonzero(values == value)
    return slices


def golden_slices(frame: pd.DataFrame, text_column: str, gate: GateConfig) -> dict[str, np.ndarray]:
    """The slices the configuration asks for: length tertiles and each of ``gate.slice_columns``."""
    slices = length_slices(frame[text_column].astype(str).tolist()) if gate.length_slices else {}
    slices.update(column_slices(frame, gate.slice_columns))
    return slices
