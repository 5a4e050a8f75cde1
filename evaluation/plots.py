"""One picture per evaluation: metrics with intervals, per class, per slice, and calibration.

Candidate and champion side by side, so a reader sees at once whether the
difference is larger than the uncertainty, which class or slice moved, and
whether confidence means what it says.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.gate import FAILED, NOT_JUDGED, Decision
from evaluation.paired import Interval

if TYPE_CHECKING:
    from evaluation.report import Calibration

CANDIDATE_COLOUR, CHAMPION_COLOUR = "#1f77b4", "#7f7f7f"


def plot_evaluation(
    decision: Decision,
    calibration: Mapping[str, Calibration],
    champion_version: str | None,
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [group for group in decision.classes if group.candidate is not None]
    rows = max(len(groups), len(decision.slices), 2)
    figure, axes = plt.subplots(2, 2, figsize=(14, 6 + 0.35 * rows))
    champion_name = f"champion v{champion_version}" if champion_version else "champion"
    _intervals_panel(
        axes[0][0],
        "Golden-set metrics",
        [
            (name, interval, decision.champion_intervals.get(name), "")
            for name, interval in decision.intervals.items()
        ],
        champion_name,
    )
    _intervals_panel(
        axes[0][1],
        "Recall per class",
        [
            (group.name.removeprefix("class "), group.candidate, group.champion, group.status)
            for group in groups
        ],
        champion_name,
    )
    _intervals_panel(
        axes[1][0],
        "Accuracy per slice",
        [(group.name, group.candidate, group.champion, group.status) for group in decision.slices],
        champion_name,
        empty="no slices configured",
    )
    _reliability_panel(axes[1][1], calibration, champion_name)
    verdict = "BLESSED" if decision.blessed else "NOT BLESSED"
    if decision.failed:
        detail = decision.failed[0] + (
            f" (and {len(decision.failed) - 1} more)" if len(decision.failed) > 1 else ""
        )
    elif decision.comparisons:
        detail = decision.comparisons[0].describe()
    else:
        detail = decision.reasons[0] if decision.reasons else ""
    figure.suptitle(
        f"{verdict}: " + textwrap.shorten(detail, 160, placeholder=" …"),
        color="#2ca02c" if decision.blessed else "#d62728",
        fontsize=11,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _intervals_panel(
    axes: Any,
    title: str,
    rows: Sequence[tuple[str, Interval | None, Interval | None, str]],
    champion_name: str,
    empty: str = "",
) -> None:
    axes.set_title(title, fontsize=10)
    if not rows:
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes, color="grey")
        axes.set_axis_off()
        return
    labels = []
    for position, (name, mine, theirs, status) in enumerate(rows):
        y = len(rows) - 1 - position
        for interval, offset, colour, who in (
            (mine, 0.15, CANDIDATE_COLOUR, "candidate"),
            (theirs, -0.15, CHAMPION_COLOUR, champion_name),
        ):
            if interval is None:
                continue
            axes.errorbar(
                interval.estimate,
                y + offset,
                # A percentile interval of a skewed statistic may sit beside its estimate.
                xerr=[
                    [max(0.0, interval.estimate - interval.lower)],
                    [max(0.0, interval.upper - interval.estimate)],
                ],
                fmt="o",
                color=colour,
                capsize=3,
                label=who if position == 0 else None,
            )
        suffix = {FAILED: "  ✗ failed", NOT_JUDGED: "  (not judged)"}.get(status, "")
        n = mine.n if mine is not None else 0
        labels.append(f"{textwrap.shorten(name, 34, placeholder='…')} (n={n}){suffix}")
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(list(reversed(labels)), fontsize=8)
    for tick, (_, _, _, status) in zip(axes.get_yticklabels(), reversed(rows), strict=True):
        tick.set_color({FAILED: "#d62728", NOT_JUDGED: "grey"}.get(status, "black"))
    # Zoomed to the intervals shown, so differences of a point or two stay visible.
    lowest = min((i.lower for _, *pair, _ in rows for i in pair if i is not None), default=0.0)
    axes.set_xlim(max(0.0, math.floor(lowest * 10) / 10 - 0.02), 1.02)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")


def _reliability_panel(axes: Any, calibration: Mapping[str, Calibration], champion_name: str) -> None:
    axes.set_title("Calibration on the golden set (reliability)", fontsize=10)
    axes.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=0.8, label="perfectly calibrated")
    for who, colour, name in (
        ("candidate", CANDIDATE_COLOUR, "candidate"),
        ("champion", CHAMPION_COLOUR, champion_name),
    ):
        facts = calibration.get(who)
        if facts is None or not facts.bins:
            continue
        axes.plot(
            [b.mean_confidence for b in facts.bins],
            [b.accuracy for b in facts.bins],
            marker="o",
            color=colour,
            label=f"{name}: ECE {facts.ece:.3f} "
            f"(T={facts.temperature:.2f}; {facts.ece_before_temperature:.3f} before)",
        )
    axes.set_xlabel("confidence", fontsize=9)
    axes.set_ylabel("accuracy", fontsize=9)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=8, loc="upper left")
