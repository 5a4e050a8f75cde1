"""Drift reports: one window's JSON summary and HTML page (with Evidently's), and the timeline table."""

from __future__ import annotations

import base64
import html
import io
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertloop.core.config import PlatformConfig
from bertloop.core.workspace import write_json_atomic
from drift.detectors import Signal
from drift.policy import Verdict


def write_reports(
    config: PlatformConfig,
    now: float,
    champion: str,
    rows: Sequence[dict[str, Any]],
    signals: list[Signal],
    reference: Any,
    window: Any,
    verdict: Verdict,
    skipped: Sequence[str] = (),
) -> Path:
    """``<time>.json`` (summary) and ``<time>.html`` under ``workspace/drift/reports``; returns the JSON."""
    folder = config.workspace / "drift" / "reports"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    summary = {
        "window_end": now,
        "window_minutes": config.drift.window_minutes,
        "champion": champion,
        "window_size": len(rows),
        "reference": reference.description,
        "verdict": verdict.level,
        "reason": verdict.reason,
        "signals": [
            {
                **signal.to_dict(),
                "adjusted_p_value": verdict.adjusted.get(signal.name),
                "counted": signal.name in verdict.fired,
            }
            for signal in signals
        ],
        "not_judged": list(skipped),
    }
    write_json_atomic(folder / f"{stamp}.json", summary)
    render_html(folder / f"{stamp}.html", summary, rows, reference, window)
    return folder / f"{stamp}.json"


def format_timeline(history: pd.DataFrame) -> str:
    """The drift checks as a plain table, oldest first, for ``bertloop drift --history``."""
    if history.empty:
        return "(no drift checks yet)"
    lines = [f"{'time (UTC)':<20}{'champion':>9}{'window':>8}{'MMD²':>9}{'accuracy':>10}  verdict"]
    for _, row in history.iterrows():
        score = "-" if pd.isna(row["drift_score"]) else f"{row['drift_score']:.4f}"
        accuracy = "-" if pd.isna(row["live_accuracy"]) else f"{row['live_accuracy']:.1%}"
        lines.append(
            f"{pd.Timestamp(row['ts'], unit='s'):%Y-%m-%d %H:%M:%S}  {row['champion'] or '-':>8}"
            f"{row['window_size']:>8}{score:>9}{accuracy:>10}  {timeline_verdict(row)}: {row['reason']}"
        )
    return "\n".join(lines)


def timeline_verdict(row: Any) -> str:
    """retrain, drift (confirmed, no retrain allowed), warning (a shift without harm) or quiet."""
    if row["triggered"]:
        return "retrain"
    if row["confirmed"]:
        return "drift"
    return "warning" if row.get("level") == "warning" else "quiet"


def render_html(
    path: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]], reference: Any, window: Any
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    confidences = [row["confidence"] for row in rows]
    axes[0].hist(reference.confidences, bins=20, alpha=0.6, density=True, label="reference")
    axes[0].hist(confidences, bins=20, alpha=0.6, density=True, label="window")
    axes[0].set_title("Confidence")
    axes[0].legend()
    labels = sorted(set(reference.label_counts) | {row["label"] for row in rows})
    ref_total = max(sum(reference.label_counts.values()), 1)
    window_counts = Counter(row["label"] for row in rows)
    positions = np.arange(len(labels))
    axes[1].bar(positions - 0.2, [reference.label_counts.get(label, 0) / ref_total for label in labels], 0.4,
                label="reference")  # fmt: skip
    axes[1].bar(positions + 0.2, [window_counts.get(label, 0) / max(len(rows), 1) for label in labels], 0.4,
                label="window")  # fmt: skip
    axes[1].set_xticks(positions, labels, rotation=30)
    axes[1].set_title("Predicted label mix")
    axes[1].legend()
    if window is not None and len(window.lengths):
        axes[2].hist(reference.lengths, bins=30, alpha=0.6, density=True, label="reference")
        axes[2].hist(window.lengths, bins=30, alpha=0.6, density=True, label="window")
        axes[2].set_title("Text length (word pieces)")
        axes[2].legend()
    else:
        axes[2].set_title("Text length: texts are redacted in the log")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    plots = base64.b64encode(buffer.getvalue()).decode()
    evidently_file = _evidently(path.with_suffix(".evidently.html"), rows, reference, window)
    table = "".join(_row(signal) for signal in summary["signals"])
    skipped = "".join(f"<li>{html.escape(line)}</li>" for line in summary["not_judged"])
    skipped = f"<p>Not judged:</p><ul>{skipped}</ul>" if skipped else ""
    link = f'<p><a href="{evidently_file.name}">Evidently data drift report</a></p>' if evidently_file else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>Drift report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
tr.drift td{{background:#fde2e2}} tr.ok td{{background:#e6f4ea}}</style></head><body>
<h1>Drift report: champion v{html.escape(str(summary["champion"]))}</h1>
<p>{summary["window_size"]} predictions in the last {summary["window_minutes"]:g} minutes,
compared with the {html.escape(summary["reference"])}.</p>
<p><strong>Verdict: {html.escape(summary["verdict"])}</strong>: {html.escape(summary["reason"])}</p>
<table><tr><th>signal</th><th>verdict</th><th>statistic</th><th>p-value</th><th>Holm-adjusted</th>
<th>detail</th></tr>{table}</table>{skipped}
{link}<img alt="distributions" src="data:image/png;base64,{plots}"></body></html>""",
        encoding="utf-8",
    )


def _row(signal: dict[str, Any]) -> str:
    verdict = "DRIFT" if signal["counted"] else "ok"
    p_value = "" if signal["p_value"] is None else f"{signal['p_value']:.2g}"
    adjusted = "" if signal["adjusted_p_value"] is None else f"{signal['adjusted_p_value']:.2g}"
    return (
        f"<tr class={'drift' if signal['counted'] else 'ok'}><td>{html.escape(signal['name'])}</td>"
        f"<td>{verdict}</td><td>{_number(signal['statistic'])}</td><td>{p_value}</td><td>{adjusted}</td>"
        f"<td>{html.escape(signal['detail'])}</td></tr>"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _evidently(path: Path, rows: Sequence[dict[str, Any]], reference: Any, window: Any) -> Path | None:
    """Evidently's tabular drift report on what both sides share: length, confidence, predicted label."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference_frame = pd.DataFrame(
        {
            "text_length": reference.lengths,
            "confidence": reference.confidences,
            "predicted_label": reference.labels.astype(str),
        }
    )
    current = pd.DataFrame({"confidence": [row["confidence"] for row in rows],
                            "predicted_label": [row["label"] for row in rows]})  # fmt: skip
    if window is not None and len(window.lengths):
        lengths = pd.DataFrame({"text_length": window.lengths})
        current = pd.concat([current.sample(len(lengths), replace=len(lengths) > len(current), random_state=0)
                             .reset_index(drop=True), lengths], axis=1)  # fmt: skip
    else:
        reference_frame = reference_frame.drop(columns="text_length")
    # A constant column (every text truncated to the same length, say) makes Evidently's
    # correlation summary divide by zero; the per-column drift tests are unaffected.
    with np.errstate(invalid="ignore", divide="ignore"):
        Report([DataDriftPreset()]).run(current, reference_frame).save_html(str(path))
    return path
