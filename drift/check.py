"""One drift check: a window of the prediction log against the champion's reference, and its verdict.

A thin composition of the drift jobs: the window comes from the prediction log,
the reference from :mod:`drift.reference` (the champion's live baseline, or its
training texts from a source the caller hands in, reweighted to the window), the
signals from :mod:`drift.signals`, the verdict (none, warning, confirmed) from
:mod:`drift.policy`, storm control from :mod:`drift.storm`, the reports from
:mod:`drift.report`.
Every check is appended to the drift history; a check that starts a retrain
exports the feedback it will train on into the landing folder.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bertloop.core import constants
from bertloop.core.config import DriftConfig, PlatformConfig
from bertloop.core.stores import predictions
from bertloop.core.stores.drift_history import CheckRecord, DriftHistory
from bertloop.core.stores.ledger import Ledger
from drift import export, features, poisoning, policy, reference, signals
from drift.detectors import Signal, accuracy_drift
from drift.poisoning import PoisoningPolicy
from drift.report import write_reports
from drift.storm import RetrainHistory, StormPolicy, may_retrain
from intake.datasets import load_golden_set
from modeling.runner import ClassifierRunner
from registry import mlflow_registry as registry
from serving.models import serving_plan


class CheckOutcome(CheckRecord):
    """What one check found and did (its timeline record, the exported batch, every signal); the drift
    DAG hands it to the task that starts a retrain."""

    data_path: str | None = None
    signals: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def fired(self) -> list[str]:
        return [signal["name"] for signal in self.signals if signal["counted"]]


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
    # The serving plan: the reference is embedded as the gateway embeds the window it logs.
    runner = ClassifierRunner.from_components(
        *registry.load_version(name, champion), config.training.max_length, serving_plan(config)
    )
    cache = _cache_dir(config, runner)
    training = reference.load_or_build(
        champion, runner, training_texts, facts.golden_accuracy, config.drift, cache
    )
    ref, rows, golden_confidences = _choose_reference(config, runner, training, champion, rows, now)
    if ref is None:
        reason = "no verdict: the window's predicted classes are not in the reference"
        return _record(config, now, champion, rows, [], reason)
    texted = [row for row in rows if row["text"]]
    if len(texted) > config.drift.max_window_texts:  # input signals need a sample, not every text
        texted = random.Random(config.drift.seed).sample(texted, config.drift.max_window_texts)
    window = features.from_log(runner, texted) if texted else None
    found, skipped = signals.detect(config.drift, ref, rows, window, golden_confidences)
    verdict = policy.decide(found, config.drift.alpha, config.drift.severe_mmd)
    report = write_reports(config, now, champion, rows, found, ref, window, verdict, skipped)
    if not verdict.confirmed:
        return _record(
            config, now, champion, rows, found, verdict.reason, report=report, verdict=verdict, ref=ref
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
    screened = poisoning.screen(labelled, PoisoningPolicy.from_config(config.drift))
    if decision.allowed and screened.quarantined:
        folder = export.quarantine_export(config, labelled, snapshot, screened)
        reason = f"{verdict.reason}; the feedback export looks poisoned and is in quarantine at {folder}: "
        return _record(
            config, now, champion, rows, found, reason + "; ".join(screened.reasons), report=report,
            snapshot=snapshot, verdict=verdict, ref=ref,
        )  # fmt: skip
    data_path = export.write_batch(config, labelled, snapshot) if decision.allowed else None
    return _record(
        config, now, champion, rows, found, f"{verdict.reason}; {decision.reason}", report=report,
        triggered=decision.allowed, snapshot=snapshot, data_path=data_path, verdict=verdict, ref=ref,
    )  # fmt: skip


def _choose_reference(
    config: PlatformConfig,
    runner: ClassifierRunner,
    training: reference.Reference,
    champion: str,
    rows: list[dict[str, Any]],
    now: float,
) -> tuple[reference.Reference | None, list[dict[str, Any]], np.ndarray | None]:
    """The champion's live baseline when it is complete, accepted, and the window lies after it (the
    window then loses the rows the baseline holds); otherwise the training reference reweighted to
    the window's predicted class mix, with the champion's confidences on the golden set."""
    settings = config.drift
    promoted_at = Ledger(config.ledger_url).alias_set_at(
        config.registry.model_name, constants.CHAMPION_ALIAS, champion
    )
    why = "no live baseline: drift.baseline_size is 0"
    if settings.baseline_size and promoted_at is None:
        why = f"no live baseline: the ledger records no promotion of v{champion}"
    elif settings.baseline_size and promoted_at is not None:
        since = predictions.answered_rows(config.prediction_log_url, champion, promoted_at, now)
        first = since[: settings.baseline_size]
        after = [row for row in rows if first and row["ts"] > first[-1]["ts"]]
        why = (
            f"live baseline still forming: {len(first)} of {settings.baseline_size} answers since "
            f"promotion, {len(after)} window answers after them ({settings.min_window_size} needed)"
        )
        usable = len(first) == settings.baseline_size and len(after) >= settings.min_window_size
        if usable and not all(row["text"] for row in first):
            why = "no live baseline: its answers were logged without texts (redacted)"
        elif usable:
            accuracy, rejected = _baseline_accuracy(first, training.accuracy, settings)
            if rejected is None:
                baseline = reference.load_or_build_baseline(
                    training, runner, first, accuracy, settings, _cache_dir(config, runner), promoted_at
                )
                return baseline, after, None
            why = f"live baseline refused: {rejected}"
    reweighted = reference.reweighted(training, Counter(row["label"] for row in rows))
    if reweighted is not None:  # the check records why the baseline is not (yet) the reference
        reweighted = replace(reweighted, description=f"{reweighted.description}; {why}")
    return reweighted, rows, _golden_confidences(config, runner, champion)


def _baseline_accuracy(
    rows: list[dict[str, Any]], golden_accuracy: float | None, settings: DriftConfig
) -> tuple[float | None, str | None]:
    """The accuracy live feedback is held to, and why the baseline is refused (its live accuracy shown
    below the golden set's).

    The lower of the golden set's accuracy and the baseline's own: live traffic harder than the golden
    set is not harm, and a baseline that happened to score better than the golden set on a hundred
    labels (the demo's scored 126 of 126) is not a promise a window can be held to; the golden set's
    hundreds of frozen rows are.
    """
    judged = [row for row in rows if row.get("true_label")]
    if len(judged) < settings.min_feedback or golden_accuracy is None:
        return golden_accuracy, None
    correct = sum(row["label"] == row["true_label"] for row in judged)
    below = accuracy_drift(golden_accuracy, correct, len(judged), settings.alpha, settings.accuracy_margin)
    if below.drifted:
        return golden_accuracy, f"the baseline's live accuracy is below the golden set's: {below.detail}"
    return min(correct / len(judged), golden_accuracy), None


def _cache_dir(config: PlatformConfig, runner: ClassifierRunner) -> Path:
    """Where references are cached: per serving plan and arithmetic, since embeddings and confidences
    depend on them."""
    return config.workspace / "drift" / runner.numerics


def _golden_confidences(config: PlatformConfig, runner: ClassifierRunner, champion: str) -> np.ndarray:
    """The champion's confidence on the golden set, which it never trained on; cached per version."""
    cache = _cache_dir(config, runner) / f"golden-confidences-v{champion}.npy"
    if cache.is_file():
        return np.load(cache)
    texts = load_golden_set(config).frame[config.data.text_column].astype(str).tolist()
    confidences = np.asarray(runner.score(texts).confidences, dtype=float)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, confidences)
    return confidences


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
    verdict: policy.Verdict | None = None,
    ref: reference.Reference | None = None,
) -> CheckOutcome:
    embedding = next((s for s in found if s.name == signals.EMBEDDING_SIGNAL), None)
    outcome = CheckOutcome(
        ts=now,
        champion=champion,
        window_size=len(rows),
        drift_score=embedding.to_dict()["statistic"] if embedding else None,  # type: ignore[arg-type]
        live_accuracy=signals.live_accuracy(rows),
        confirmed=verdict is not None and verdict.confirmed,
        level=verdict.level if verdict else policy.NONE,
        reference=ref.description if ref else None,
        triggered=triggered,
        snapshot=snapshot,
        reason=reason,
        report=str(report) if report else None,
        data_path=data_path,
        signals=[
            {**signal.to_dict(), "counted": verdict is not None and signal.name in verdict.fired}
            for signal in found
        ],
    )
    DriftHistory(config.ledger_url).append(outcome)
    return outcome
