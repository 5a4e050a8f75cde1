"""One drift check: a window of the prediction log against the champion's reference, and its verdict.

A thin composition of the drift jobs: the window comes from the prediction log,
the reference from :mod:`drift.reference` (its texts from a source the caller
hands in), the signals and the confirmation rule from :mod:`drift.signals`,
storm control from :mod:`drift.storm`, the reports from :mod:`drift.report`.
Every check is appended to the drift history; a check that starts a retrain
exports the feedback it will train on into the landing folder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.stores import predictions
from bertloop.core.stores.drift_history import CheckRecord, DriftHistory
from drift import export, features, poisoning, reference, signals
from drift.detectors import Signal
from drift.poisoning import PoisoningPolicy
from drift.report import write_reports
from drift.storm import RetrainHistory, StormPolicy, may_retrain
from modeling.runner import ClassifierRunner
from registry import mlflow_registry as registry


class CheckOutcome(CheckRecord):
    """What one check found and did (its timeline record, the exported batch, every signal); the drift
    DAG hands it to the task that starts a retrain."""

    data_path: str | None = None
    signals: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def fired(self) -> list[str]:
        return [signal["name"] for signal in self.signals if signal["drifted"]]


def run_check(
    config: PlatformConfig,
    training_texts: reference.TrainingTexts,
    now: float | None = None,
    retrains_running: int = 0,
) -> CheckOutcome:
    """Judge the last ``drift.window_minutes`` of the champion's answers."""
    now = time.time() if now is None else now
    client = registry.connect(config)
    name = config.registry.model_name
    champion = registry.version_for_alias(client, name, constants.CHAMPION_ALIAS)
    if champion is None:
        return _record(config, now, None, [], [], "no champion to monitor yet")
    rows = predictions.answered_rows(
        config.prediction_log_url, champion, now - config.drift.window_minutes * 60, now
    )
    if len(rows) < config.drift.min_window_size:
        reason = f"{len(rows)} predictions in the window; no verdict below {config.drift.min_window_size}"
        return _record(config, now, champion, rows, [], reason)
    facts = registry.version_facts(client, name, champion)
    runner = ClassifierRunner.from_components(
        *registry.load_version(name, champion), config.training.max_length
    )
    ref = reference.load_or_build(
        champion, runner, training_texts, facts.golden_accuracy, config.drift, config.workspace / "drift"
    )
    texts = [row["text"] for row in rows if row["text"]]
    if len(texts) > config.drift.max_window_texts:  # input signals need a sample, not every text
        texts = random.Random(config.drift.seed).sample(texts, config.drift.max_window_texts)
    window = features.featurize(runner, texts) if texts else None
    found = signals.detect(config.drift, ref, rows, window)
    report = write_reports(config, now, champion, rows, found, ref, window)
    if not signals.confirmed(found, config.drift.min_signals):
        fired = [signal.name for signal in found if signal.drifted] or ["none"]
        return _record(
            config, now, champion, rows, found, f"no confirmed drift (fired: {fired})", report=report
        )
    labelled = export.labelled_feedback(config.prediction_log_url, since=facts.trained_at)
    snapshot = export.snapshot_id(labelled)
    history = DriftHistory(config.ledger_url).last_trigger()
    decision = may_retrain(
        now,
        snapshot,
        RetrainHistory(
            retrains_running=retrains_running,
            last_trigger_at=history.ts if history else None,
            last_snapshot=history.snapshot if history else None,
            consecutive_unblessed=registry.consecutive_unblessed(client, name),
        ),
        StormPolicy(
            cooldown_seconds=config.drift.cooldown_minutes * 60,
            backoff_factor=config.drift.backoff_factor,
            max_cooldown_seconds=config.drift.max_cooldown_minutes * 60,
        ),
    )
    verdict = poisoning.screen(labelled, PoisoningPolicy.from_config(config.drift))
    if decision.allowed and verdict.quarantined:
        folder = export.quarantine_export(config, labelled, snapshot, verdict)
        reason = f"drift confirmed; the feedback export looks poisoned and is in quarantine at {folder}: "
        return _record(
            config, now, champion, rows, found, reason + "; ".join(verdict.reasons), report=report,
            snapshot=snapshot,
        )  # fmt: skip
    data_path = export.write_batch(config, labelled, snapshot) if decision.allowed else None
    return _record(
        config, now, champion, rows, found, f"drift confirmed; {decision.reason}", report=report,
        triggered=decision.allowed, snapshot=snapshot, data_path=data_path,
    )  # fmt: skip


def _record(
    config: PlatformConfig,
    now: float,
    champion: str | None,
    rows: Sequence[Mapping[str, Any]],
    found: list[Signal],
    reason: str,
    report: Path | None = None,
    triggered: bool = False,
    snapshot: str | None = None,
    data_path: str | None = None,
) -> CheckOutcome:
    embedding = next((s for s in found if s.name == signals.EMBEDDING_SIGNAL), None)
    outcome = CheckOutcome(
        ts=now,
        champion=champion,
        window_size=len(rows),
        drift_score=embedding.to_dict()["statistic"] if embedding else None,  # type: ignore[arg-type]
        live_accuracy=signals.live_accuracy(rows),
        confirmed=bool(found) and signals.confirmed(found, config.drift.min_signals),
        triggered=triggered,
        snapshot=snapshot,
        reason=reason,
        report=str(report) if report else None,
        data_path=data_path,
        signals=[signal.to_dict() for signal in found],
    )
    DriftHistory(config.ledger_url).append(outcome)
    return outcome
