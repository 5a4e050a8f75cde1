"""The demo's closing loop: steady traffic, injected drift, detection, retraining, canary, recovery.

A new publisher starts wrapping every article in a football-club banner, which
pulls the champion towards 'sports'. Steady traffic gives no retrain; drifted
traffic is detected, its feedback becomes a batch, ``retrain`` runs on it, the
new model goes through the canary, and a timeline picture shows the drift score
and live accuracy before and after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bertloop.core.config import PlatformConfig
from bertloop.core.constants import DAG_DRIFT
from bertloop.core.stores.drift_history import DriftHistory

BANNER = (
    "Matchday Media network: football, league tables, cup draws, transfer gossip, goals and "
    "highlights from every stadium, brought to you by the Premier Supporters Club. "
)


def _phase(url: str, texts: pd.DataFrame, requests: int, seed: int) -> dict[str, int]:
    from demo.canary import TrafficDriver

    driver = TrafficDriver(url, texts, clients=4, feedback_delay=0.5, seed=seed)
    driver.start()
    while driver.sent < requests:
        time.sleep(0.2)
    driver.stop()
    return {"requests": driver.sent, "failed": driver.failed, "feedback": driver.feedback_sent}


def _wait_out(ended: float, window: float) -> None:
    """Sleep until traffic that ended at ``ended`` has left the drift window."""
    time.sleep(max(0.0, ended + window + 2 - time.time()))


def _latest_check(config: PlatformConfig) -> dict[str, Any]:
    return DriftHistory(config.ledger_url).timeline().iloc[-1].to_dict()


# How the timeline marks each verdict: a confirmation apart from a warning, in colour and in shape.
VERDICT_MARKS: dict[str, tuple[str, str, str]] = {
    "retrain": ("retrain triggered", "tab:red", "X"),
    "drift": ("drift confirmed (retrain held back)", "darkred", "D"),
    "warning": ("warning: shift, no harm (no retrain)", "tab:orange", "^"),
    "quiet": ("no drift", "tab:green", "o"),
}


def plot_timeline(config: PlatformConfig, path: Path, events: list[tuple[int, str]]) -> Path:
    """The drift history as a picture at ``path``; ``events`` happen after the check they name."""
    import matplotlib.pyplot as plt

    figure = draw_timeline(DriftHistory(config.ledger_url).timeline(), events)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw_timeline(history: pd.DataFrame, events: list[tuple[int, str]]) -> Any:
    """Drift score and live accuracy per check, each check marked by its verdict (a legend says which
    mark is which); returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    from drift.report import timeline_verdict

    history = history[history["window_size"] > 0].reset_index(drop=True)
    figure, drift_axis = plt.subplots(figsize=(9, 4.8))
    checks = list(range(1, len(history) + 1))
    drift_axis.plot(checks, history["drift_score"], "-", color="tab:red", label="drift score (MMD²)")
    drift_axis.set_ylabel("drift score (MMD², sentence embeddings)", color="tab:red")
    highest = history["drift_score"].max()  # NaN when no check had texts to embed
    drift_axis.set_ylim(0, max(float(highest) * 1.3, 0.01) if pd.notna(highest) else 0.01)
    drift_axis.set_xticks(
        checks,
        [
            f"{pd.Timestamp(row['ts'], unit='s'):%H:%M:%S}\nchampion v{row['champion']}"
            for _, row in history.iterrows()
        ],
    )
    drift_axis.set_xlabel("drift check (UTC), one per window of live traffic")
    accuracy_axis = drift_axis.twinx()
    accuracy_axis.plot(
        checks, history["live_accuracy"], "s-", color="tab:blue", label="live accuracy (feedback labels)"
    )
    accuracy_axis.set_ylabel("live accuracy", color="tab:blue")
    accuracy_axis.set_ylim(0, 1.05)
    accuracy_axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    shown: list[str] = []
    for index, row in history.iterrows():
        verdict = timeline_verdict(row)
        words, colour, marker = VERDICT_MARKS[verdict]
        score = row["drift_score"]
        height = 0.0 if pd.isna(score) else float(score)  # a redacted window has no embedding score
        drift_axis.plot([index + 1], [height], marker, color=colour, markersize=10, zorder=3)
        drift_axis.annotate(
            f"{'n/a' if pd.isna(score) else f'{score:.3f}'}: {words}", (index + 1, height),
            textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8, color=colour,
        )  # fmt: skip
        if verdict not in shown:
            shown.append(verdict)
    for position, label in events:  # an event happens after check ``position``
        drift_axis.axvline(position + 0.5, color="grey", linestyle="--")
        drift_axis.annotate(
            label, (position + 0.5, 0), textcoords="offset points", xytext=(4, 6), fontsize=8, color="grey"
        )
    lines = drift_axis.get_lines()[:1] + accuracy_axis.get_lines()[:1]
    marks = [
        Line2D([], [], linestyle="", marker=VERDICT_MARKS[v][2], color=VERDICT_MARKS[v][1], markersize=8)
        for v in shown
    ]
    drift_axis.legend(
        lines + marks, [str(line.get_label()) for line in lines] + [VERDICT_MARKS[v][0] for v in shown],
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False,
    )  # fmt: skip
    figure.suptitle("Drift score and live accuracy, before and after the drift-triggered retrain")
    figure.tight_layout()
    return figure


def run(
    config: PlatformConfig,
    held_out: pd.DataFrame,
    env: dict[str, str],
    airflow: Callable[[list[str]], int],
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from devtools.process import start_gateway

    steady = held_out[held_out["text"].str.len() <= config.serving.max_text_chars - len(BANNER)]
    drifted = steady.assign(text=BANNER + steady["text"])
    gateway = start_gateway(workdir / "gateway-drift.log", env=env)
    url = gateway.url
    checks: list[dict[str, Any]] = []
    events: list[tuple[int, str]] = []
    window = config.drift.window_minutes * 60
    try:
        say("steady traffic (no drift injected), then airflow dags test monitor_drift")
        _wait_out(time.time(), window)  # the window must hold only this phase's traffic
        traffic = [_phase(url, steady, 400, seed=11)]
        ended = time.time()
        airflow(["dags", "test", DAG_DRIFT])
        checks.append(_latest_check(config))
        if checks[-1]["confirmed"]:
            raise SystemExit(f"steady traffic was confirmed as drift (a false alarm): {checks[-1]['reason']}")
        _wait_out(ended, window)
        say(
            "drifted traffic (a publisher's football banner on every article), "
            "then airflow dags test monitor_drift"
        )
        traffic.append(_phase(url, drifted, 400, seed=12))
        ended = time.time()
        airflow(["dags", "test", DAG_DRIFT])
        checks.append(_latest_check(config))
        exports = sorted(
            config.data.landing_dir.glob("drift-feedback-*.csv"), key=lambda p: p.stat().st_mtime
        )
        if not checks[-1]["triggered"] or not exports:
            raise SystemExit(f"drift was not detected or not acted on: {checks[-1]['reason']}")
        events.append((len(checks), "retrain + canary"))
        say(f"airflow dags test retrain on {exports[-1].name} (what the drift asset starts)")
        # One epoch keeps the demo short; the asset-started run would use training.epochs.
        airflow(
            ["dags", "test", "retrain", "--conf", json.dumps({"data_path": str(exports[-1]), "epochs": 1})]
        )
        say("airflow dags test canary, under drifted traffic")
        from demo.canary import TrafficDriver

        background = TrafficDriver(url, drifted, clients=4, feedback_delay=0.5, seed=13)
        background.start()
        try:
            airflow(["dags", "test", "canary"])
        finally:
            background.stop()
        _wait_out(ended, window)
        say(
            "drifted traffic again, now served by the retrained champion, "
            "then airflow dags test monitor_drift"
        )
        traffic.append(_phase(url, drifted, 400, seed=14))
        airflow(["dags", "test", DAG_DRIFT])
        checks.append(_latest_check(config))
        if checks[-1]["confirmed"]:  # the retrained champion alarming on the traffic it was trained for
            raise SystemExit(f"'drift back' after the retrain: {checks[-1]['reason']}")
    finally:
        gateway.stop()
    picture = plot_timeline(config, workdir / "drift-timeline.png", events)
    return {"checks": checks, "traffic": traffic, "timeline": str(picture)}
