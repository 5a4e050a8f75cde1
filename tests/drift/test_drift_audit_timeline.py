"""Issue 16, items 2 and 5: the timeline (table and picture) marks a warning apart from a confirmation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertloop.core.stores.drift_history import CheckRecord, DriftHistory
from drift.report import format_timeline, timeline_verdict


def _history(tmp_path: Path) -> pd.DataFrame:
    history = DriftHistory(f"sqlite:///{tmp_path / 'ledger.db'}")
    common = {"champion": "2", "window_size": 400, "snapshot": None, "report": None}
    for ts, level, confirmed, triggered, score, reason in [
        (1_000.0, "none", False, False, 0.004, "no drift at family rate 0.01"),
        (2_000.0, "warning", False, False, 0.024, "warning: embedding_mmd shifted, with no sign of harm"),
        (3_000.0, "confirmed", True, False, 0.11, "drift confirmed; cooldown: 60s of 600s left"),
        (4_000.0, "confirmed", True, True, None, "drift confirmed: harm shown by accuracy"),
    ]:
        history.append(
            CheckRecord(ts=ts, level=level, confirmed=confirmed, triggered=triggered, drift_score=score,
                        live_accuracy=0.9, reason=reason, reference="live baseline of v2", **common)
        )  # fmt: skip
    return history.timeline()


def test_the_timeline_table_names_each_verdict_apart(tmp_path: Path) -> None:
    history = _history(tmp_path)
    assert [timeline_verdict(row) for _, row in history.iterrows()] == [
        "quiet",
        "warning",
        "drift",
        "retrain",
    ]
    table = format_timeline(history).splitlines()
    assert "quiet: no drift" in table[1] and "warning: warning: embedding_mmd shifted" in table[2]
    assert "drift: drift confirmed; cooldown" in table[3] and "retrain: drift confirmed: harm" in table[4]
    assert history["reference"].eq("live baseline of v2").all()  # the reference is kept with each check


def test_the_timeline_picture_marks_warnings_apart_from_confirmations(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from demo.drift import VERDICT_MARKS, draw_timeline

    figure = draw_timeline(_history(tmp_path), [(4, "retrain + canary")])
    try:
        legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
        assert [VERDICT_MARKS[v][0] for v in ("quiet", "warning", "drift", "retrain")] == legend[2:]
        marks = {(line.get_color(), line.get_marker()) for line in figure.axes[0].get_lines()[1:]}
        warning, confirmed, retrain = (VERDICT_MARKS[v][1:] for v in ("warning", "drift", "retrain"))
        assert {warning, confirmed, retrain} <= marks and len({warning, confirmed, retrain}) == 3
        # A check with no embedding score (a redacted log) is still marked, at zero.
        assert figure.axes[0].get_lines()[-1].get_ydata()[0] == 0.0
    finally:
        plt.close(figure)
