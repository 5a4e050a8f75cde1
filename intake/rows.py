"""Row-level screening: the rows a batch can do without, split off with a reason each.

A standard public dataset arrives with a few rows copied from the golden set and
texts repeated; rejecting it whole makes users switch validation off. With
``validation.on_bad_rows: drop_rows`` each row-level problem (no text, blank
text, no label, unknown label, length out of bounds, leaked from the golden set,
the same text under different labels) removes that row only, and the batch
goes on if the removed share stays within ``validation.max_bad_row_share``.
Exact repeats (same text, same label) collapse to their first row: reported,
not counted as bad. Batch-level checks (columns, minimum rows, classes) still
judge the whole batch, on the rows that remain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from bertloop.core.config import PlatformConfig
from intake.leakage import GoldenIndex, normalize_text

REASON = "reason"
ROW = "row"
_INVISIBLE = re.compile(r"^[\s\u200b-\u200d\u2060\ufeff]*$")


@dataclass(frozen=True)
class RowScreen:
    kept: pd.DataFrame  # the rows that go on, in their original order, original columns only
    dropped: pd.DataFrame  # the rows split off: original columns, plus ``row`` and ``reason``
    repeats: int  # exact repeats collapsed into their first row

    @property
    def bad_share(self) -> float:
        total = len(self.kept) + len(self.dropped) + self.repeats
        return len(self.dropped) / total if total else 0.0

    def summary(self) -> dict[str, int]:
        counts = self.dropped[REASON].map(lambda reason: reason.split(":")[0]).value_counts()
        return {str(reason): int(count) for reason, count in counts.items()}


def screen_rows(
    frame: pd.DataFrame,
    config: PlatformConfig,
    golden_normalized: set[str],
    golden_index: GoldenIndex | None = None,
) -> RowScreen:
    """Split ``frame`` into the rows to keep and the rows to drop (the first reason found for each)."""
    text, label = config.data.text_column, config.data.label_column
    bounds = config.validation
    labels = set(config.data.labels)
    reasons: dict[int, str] = {}
    texts, classes = frame[text], frame[label]
    normalized = texts.map(lambda value: normalize_text(value) if isinstance(value, str) else None)
    near = golden_index.nearest(texts.tolist()) if golden_index is not None else None
    for position, (value, tag, folded) in enumerate(zip(texts, classes, normalized, strict=True)):
        if value is None:
            reasons[position] = "no text"
        elif _INVISIBLE.match(value):
            reasons[position] = "blank text"
        elif not bounds.min_text_chars <= len(value) <= bounds.max_text_chars:
            reasons[position] = (
                f"text length: {len(value)} characters, outside "
                f"[{bounds.min_text_chars}, {bounds.max_text_chars}]"
            )
        elif tag is None:
            reasons[position] = "no label"
        elif tag not in labels:
            reasons[position] = f"unknown label: {tag!r} is not in data.labels"
        elif folded in golden_normalized:
            reasons[position] = "leaked: the text is in the golden set"
        elif near is not None and near[position] >= (bounds.near_duplicate_threshold or 1.0):
            reasons[position] = f"leaked: near-duplicate of a golden-set text (Jaccard {near[position]:.2f})"
    candidates = [position for position in range(len(frame)) if position not in reasons]
    by_text: dict[str, set[str]] = {}
    for position in candidates:
        by_text.setdefault(normalized.iloc[position], set()).add(classes.iloc[position])
    seen: set[str] = set()
    repeats = 0
    kept: list[int] = []
    for position in candidates:
        folded = normalized.iloc[position]
        if len(by_text[folded]) > 1:
            reasons[position] = f"conflicting labels: the same text is labelled {sorted(by_text[folded])}"
        elif folded in seen:
            repeats += 1  # an exact repeat: same text, same label
        else:
            seen.add(folded)
            kept.append(position)
    dropped = frame.iloc[sorted(reasons)].copy()
    dropped.insert(0, ROW, sorted(reasons))
    dropped[REASON] = [reasons[position] for position in sorted(reasons)]
    return RowScreen(
        kept=frame.iloc[kept].reset_index(drop=True), dropped=dropped.reset_index(drop=True), repeats=repeats
    )
