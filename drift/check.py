"""The drift DAG's work: check one window, write its reports, and decide whether to retrain.

Every check is appended to the ``drift_checks`` table (the timeline of drift
scores and accuracy); a check that starts a retrain exports the feedback it
will train on into the landing folder and records its snapshot, so storm control
can refuse a second retrain on the same data.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from bertloop import constants
from bertloop.config import PlatformConfig
from bertloop.workspace import write_json_atomic
from drift.detectors import Signal
from drift.storm import RetrainHistory, StormPolicy, may_retrain

metadata = sa.MetaData()
drift_checks = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("champion", sa.String(32), nullable=True),
    sa.Column("window_size", sa.Integer, nullable=False),
    sa.Column("drift_score", sa.Float, nullable=True),
    sa.Column("live_accuracy", sa.Float, nullable=True),
    sa.Column("confirmed", sa.Boolean, nullable=False),
    sa.Column("triggered", sa.Boolean, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("report", sa.Text, nullable=True),
)


@contextmanager
def state_connection(config: PlatformConfig, write: bool = False) -> Iterator[sa.Connection]:
    """A connection to the drift_checks table (next to the promotion ledger); the engine is disposed after."""
    from serving.prediction_log import make_engine

    engine = make_engine(config.ledger_url)
    metadata.create_all(engine)
    try:
        with engine.begin() if write else engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def run_check(config: PlatformConfig, now: float | None = None, retrains_running: int = 0) -> dict[str, Any]:
    from registry.mlflow_registry import connect, version_for_alias

    now = time.time() if now is None else now
    client = connect(config)
    champion = version_for_alias(client, config.registry.model_name, constants.CHAMPION_ALIAS)
    if champion is None:
        return _record(config, now, None, [], [], None, "no champion to monitor yet", None, None)
    from drift.monitor import build_reference, detect, featurize, window_rows
    from serving.models import load_from_registry

    rows = window_rows(config, champion, now - config.drift.window_minutes * 60, now)
    if len(rows) < config.drift.min_window_size:
        reason = f"{len(rows)} predictions in the window; no verdict below {config.drift.min_window_size}"
        return _record(config, now, champion, rows, [], None, reason, None, None)
    served = load_from_registry(config, champion)
    reference = build_reference(config, champion, served.model, served.tokenizer)
    texts = [row["text"] for row in rows if row["text"]]
    if len(texts) > config.drift.max_window_texts:  # input signals need a sample, not every text
        texts = random.Random(config.drift.seed).sample(texts, config.drift.max_window_texts)
    window = featurize(served.model, served.tokenizer, texts, config.training.max_length) if texts else None
    signals = detect(config, reference, rows, window)
    report = write_reports(config, now, champion, rows, signals, reference, window)
    return _decide(config, now, champion, rows, signals, report, retrains_running)


def _decide(
    config: PlatformConfig,
    now: float,
    champion: str,
    rows: Sequence[dict[str, Any]],
    signals: list[Signal],
    report: Path,
    retrains_running: int,
) -> dict[str, Any]:
    from drift.monitor import confirmed

    if not confirmed(signals, config.drift.min_signals):
        fired = [signal.name for signal in signals if signal.drifted] or ["none"]
        return _record(
            config, now, champion, rows, signals, False, f"no confirmed drift (fired: {fired})", None, report
        )
    labelled = labelled_feedback_since_training(config, champion)
    snapshot = _snapshot(labelled)
    decision = may_retrain(now, snapshot, retrain_history(config, retrains_running), _storm_policy(config))
    data_path = export_feedback(config, labelled, snapshot) if decision.allowed else None
    return _record(
        config, now, champion, rows, signals, decision.allowed, f"drift confirmed; {decision.reason}",
        snapshot, report, data_path=data_path,
    )  # fmt: skip


def labelled_feedback_since_training(config: PlatformConfig, champion: str) -> pd.DataFrame:
    """Texts with true labels gathered since the champion was trained, whatever model answered them."""
    from registry.mlflow_registry import connect
    from serving.prediction_log import feedback, make_engine, predictions

    client = connect(config)
    run_id = client.get_model_version(config.registry.model_name, champion).run_id
    trained_at = client.get_run(run_id).info.start_time / 1000
    engine = make_engine(config.prediction_log_url)
    query = (
        sa.select(predictions.c.request_id, predictions.c.text, feedback.c.label)
        .join(feedback, feedback.c.request_id == predictions.c.request_id)
        .where(feedback.c.ts >= trained_at, predictions.c.text.is_not(None))
        .order_by(predictions.c.request_id)
    )
    try:
        with engine.connect() as connection:
            frame = pd.DataFrame(
                connection.execute(query).fetchall(), columns=["request_id", "text", "label"]
            )
    finally:
        engine.dispose()
    return frame.drop_duplicates("text")


def export_feedback(config: PlatformConfig, labelled: pd.DataFrame, snapshot: str) -> str:
    """The feedback as a labelled batch in the landing folder: it goes through validation like any batch."""
    path = config.data.landing_dir / f"drift-feedback-{snapshot[:12]}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled.rename(columns={"text": config.data.text_column, "label": config.data.label_column})[
        [config.data.text_column, config.data.label_column]
    ].to_csv(path, index=False)
    return str(path)


def retrain_history(config: PlatformConfig, retrains_running: int) -> RetrainHistory:
    from registry.mlflow_registry import connect

    with state_connection(config) as connection:
        last = connection.execute(
            sa.select(drift_checks.c.ts, drift_checks.c.snapshot)
            .where(drift_checks.c.triggered.is_(True))
            .order_by(drift_checks.c.id.desc())
            .limit(1)
        ).first()
    client = connect(config)
    versions = sorted(
        client.search_model_versions(f"name = '{config.registry.model_name}'"), key=lambda v: -int(v.version)
    )
    unblessed = 0
    for version in versions:
        if version.tags.get(constants.TAG_DECISION) == constants.DECISION_NOT_BLESSED:
            unblessed += 1
        else:
            break
    return RetrainHistory(
        retrains_running=retrains_running,
        last_trigger_at=last.ts if last else None,
        last_snapshot=last.snapshot if last else None,
        consecutive_unblessed=unblessed,
    )


def write_reports(
    config: PlatformConfig,
    now: float,
    champion: str,
    rows: Sequence[dict[str, Any]],
    signals: list[Signal],
    reference: Any,
    window: Any,
) -> Path:
    from drift.report import render_html

    folder = config.workspace / "drift" / "reports"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    summary = {
        "window_end": now,
        "window_minutes": config.drift.window_minutes,
        "champion": champion,
        "window_size": len(rows),
        "signals": [signal.to_dict() for signal in signals],
    }
    write_json_atomic(folder / f"{stamp}.json", summary)
    render_html(folder / f"{stamp}.html", summary, rows, reference, window)
    return folder / f"{stamp}.json"


def _record(
    config: PlatformConfig,
    now: float,
    champion: str | None,
    rows: Sequence[dict[str, Any]],
    signals: list[Signal],
    triggered: bool | None,
    reason: str,
    snapshot: str | None,
    report: Path | None,
    data_path: str | None = None,
) -> dict[str, Any]:
    from drift.monitor import confirmed

    embedding = next((s for s in signals if s.name == "embedding_mmd"), None)
    accuracy = next((s for s in signals if s.name == "accuracy"), None)
    judged = [row for row in rows if row.get("true_label")]
    live_accuracy = sum(row["label"] == row["true_label"] for row in judged) / len(judged) if judged else None
    outcome = {
        "ts": now,
        "champion": champion,
        "window_size": len(rows),
        "drift_score": embedding.to_dict()["statistic"] if embedding else None,
        "live_accuracy": live_accuracy,
        "confirmed": bool(signals) and confirmed(signals, config.drift.min_signals),
        "triggered": bool(triggered),
        "snapshot": snapshot,
        "reason": reason,
        "report": str(report) if report else None,
    }
    with state_connection(config, write=True) as connection:
        connection.execute(drift_checks.insert().values(**outcome))
    return {
        **outcome,
        "data_path": data_path,
        "signals": [signal.to_dict() for signal in signals],
        "accuracy_signal": accuracy.to_dict() if accuracy else None,
    }


def timeline(config: PlatformConfig) -> pd.DataFrame:
    with state_connection(config) as connection:
        return pd.DataFrame(
            connection.execute(sa.select(drift_checks).order_by(drift_checks.c.id)).mappings().all()
        )


def format_timeline(history: pd.DataFrame) -> str:
    """The drift checks as a plain table, oldest first, for ``bertloop drift --history``."""
    if history.empty:
        return "(no drift checks yet)"
    lines = [f"{'time (UTC)':<20}{'champion':>9}{'window':>8}{'MMD²':>9}{'accuracy':>10}  verdict"]
    for _, row in history.iterrows():
        score = "-" if pd.isna(row["drift_score"]) else f"{row['drift_score']:.4f}"
        accuracy = "-" if pd.isna(row["live_accuracy"]) else f"{row['live_accuracy']:.1%}"
        verdict = "retrain" if row["triggered"] else ("drift" if row["confirmed"] else "quiet")
        lines.append(
            f"{pd.Timestamp(row['ts'], unit='s'):%Y-%m-%d %H:%M:%S}  {row['champion'] or '-':>8}"
            f"{row['window_size']:>8}{score:>9}{accuracy:>10}  {verdict}: {row['reason']}"
        )
    return "\n".join(lines)


def _snapshot(labelled: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(labelled["request_id"])).encode()).hexdigest()


def _storm_policy(config: PlatformConfig) -> StormPolicy:
    return StormPolicy(
        cooldown_seconds=config.drift.cooldown_minutes * 60,
        backoff_factor=config.drift.backoff_factor,
        max_cooldown_seconds=config.drift.max_cooldown_minutes * 60,
    )


def describe(outcome: dict[str, Any]) -> str:
    return json.dumps({k: outcome[k] for k in ("confirmed", "triggered", "reason", "window_size")})
