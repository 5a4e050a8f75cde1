"""Scoring the candidate and the champion on the golden set in one run, and writing the verdict.

Both models are scored here, on the same golden set, in the same run: the
champion's numbers are never copied from the run that trained it. The models
come in as runners and the verdict goes out as files; recording it in the
registry is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertloop.core import constants
from bertloop.core.workspace import write_json_atomic
from evaluation.gate import Decision, GatePolicy, GoldenPredictions, GroupResult, decide
from evaluation.metrics import GoldenScores, metric_safe, plot_confusion_matrix, score
from evaluation.paired import Indices
from evaluation.plots import plot_evaluation
from modeling.calibration import ReliabilityBin, expected_calibration_error, reliability_bins
from modeling.runner import ClassifierRunner, Scored

METRIC_ECE = "ece"
METRIC_RAW_ECE = "ece_before_temperature"
METRIC_TEMPERATURE = "temperature"


@dataclass(frozen=True)
class Calibration:
    """How well one model's confidence matches its accuracy on the golden set."""

    ece: float
    ece_before_temperature: float
    temperature: float
    mean_confidence: float
    bins: list[ReliabilityBin] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {
            METRIC_ECE: self.ece,
            METRIC_RAW_ECE: self.ece_before_temperature,
            METRIC_TEMPERATURE: self.temperature,
        }


@dataclass(frozen=True)
class Evaluation:
    candidate: GoldenScores
    champion: GoldenScores | None
    champion_version: str | None
    decision: Decision
    calibration: Mapping[str, Calibration] = field(default_factory=dict)  # "candidate", "champion"
    predicted: Sequence[str] = ()  # the candidate's answer per golden text, in the set's order

    @property
    def outcome(self) -> str:
        return constants.DECISION_BLESSED if self.decision.blessed else constants.DECISION_NOT_BLESSED

    def metrics(self) -> dict[str, float]:
        """Every number of both models, flattened under the candidate's and the champion's prefixes."""
        metrics = self.candidate.flat(constants.GOLDEN_PREFIX)
        for name, interval in {**self.decision.intervals, **self.decision.class_intervals}.items():
            metrics[f"{constants.GOLDEN_PREFIX}{metric_safe(name)}_lower"] = interval.lower
            metrics[f"{constants.GOLDEN_PREFIX}{metric_safe(name)}_upper"] = interval.upper
        if "candidate" in self.calibration:
            for name, value in self.calibration["candidate"].metrics().items():
                metrics[f"{constants.GOLDEN_PREFIX}{name}"] = value
        if self.champion is not None:
            metrics.update(self.champion.flat(constants.CHAMPION_PREFIX))
            if "champion" in self.calibration:
                for name, value in self.calibration["champion"].metrics().items():
                    metrics[f"{constants.CHAMPION_PREFIX}{name}"] = value
        for comparison in self.decision.comparisons:
            metrics[f"{comparison.metric}_difference"] = comparison.difference
            metrics[f"{comparison.metric}_difference_lower"] = comparison.lower
            metrics[f"{comparison.metric}_difference_upper"] = comparison.upper
        return {key: value for key, value in metrics.items() if np.isfinite(value)}

    def intervals(self) -> dict[str, str]:
        """``{"accuracy": "0.925 (0.890–0.960, n=200)"}``: the candidate's metrics as people read them."""
        every = {**self.decision.intervals, **self.decision.class_intervals}
        return {metric_safe(name): interval.describe() for name, interval in every.items()}

    def details(self) -> dict[str, Any]:
        """The comparisons, classes, slices, calibration and advice, as plain data for the verdict file."""
        return {
            "intervals": self.intervals(),
            "comparisons": [asdict(comparison) for comparison in self.decision.comparisons],
            "classes": [_group(group) for group in self.decision.classes],
            "slices": [_group(group) for group in self.decision.slices],
            "calibration": {who: facts.metrics() for who, facts in self.calibration.items()},
            "advice": list(self.decision.advice),
        }


def evaluate(
    candidate: ClassifierRunner,
    champion: ClassifierRunner | None,
    champion_version: str | None,
    texts: Sequence[str],
    truth: Sequence[str],
    labels: Sequence[str],
    policy: GatePolicy,
    batch_size: int,
    slices: Mapping[str, Indices] | None = None,
) -> Evaluation:
    """Score both models on the same golden texts, measure their calibration and apply the gate."""
    mine = candidate.score(texts, batch_size)
    theirs = champion.score(texts, batch_size) if champion is not None else None
    calibration = {"candidate": calibration_of(mine, truth, candidate.temperature)}
    if theirs is not None and champion is not None:
        calibration["champion"] = calibration_of(theirs, truth, champion.temperature)
    decision = decide(
        GoldenPredictions(truth, mine.labels, labels, theirs.labels if theirs else None, slices or {}),
        policy,
    )
    return Evaluation(
        candidate=score(truth, mine.labels, labels),
        champion=score(truth, theirs.labels, labels) if theirs is not None else None,
        champion_version=champion_version,
        decision=decision,
        calibration=calibration,
        predicted=mine.labels,
    )


def calibration_of(scored: Scored, truth: Sequence[str], temperature: float) -> Calibration:
    """ECE of the confidences the runner gives (after its temperature) and of the raw softmax."""
    correct = [label == expected for label, expected in zip(scored.labels, truth, strict=True)]
    logits = scored.logits.astype(np.float64)
    raw = np.exp(logits - logits.max(axis=1, keepdims=True))
    raw_confidence = (raw.max(axis=1) / raw.sum(axis=1)).tolist()
    return Calibration(
        ece=expected_calibration_error(scored.confidences, correct),
        ece_before_temperature=expected_calibration_error(raw_confidence, correct),
        temperature=temperature,
        mean_confidence=float(np.mean(scored.confidences)),
        bins=reliability_bins(scored.confidences, correct),
    )


def write_report(evaluation: Evaluation, folder: Path, verdict: dict[str, object]) -> Path:
    """The evaluation picture, confusion matrices of both models and ``decision.json`` into ``folder``."""
    plot_evaluation(
        evaluation.decision, evaluation.calibration, evaluation.champion_version, folder / "evaluation.png"
    )
    plot_confusion_matrix(
        evaluation.candidate, "Candidate on the golden set", folder / "confusion_matrix.png"
    )
    if evaluation.champion is not None:
        plot_confusion_matrix(
            evaluation.champion,
            f"Champion v{evaluation.champion_version} on the golden set",
            folder / "champion_confusion_matrix.png",
        )
    write_json_atomic(folder / "decision.json", verdict)
    return folder


def _group(group: GroupResult) -> dict[str, Any]:
    return {
        "name": group.name,
        "n": group.n,
        "status": group.status,
        "candidate": group.candidate.describe() if group.candidate else None,
        "champion": group.champion.describe() if group.champion else None,
        "difference": group.comparison.difference if group.comparison else None,
        "difference_interval": [group.comparison.lower, group.comparison.upper] if group.comparison else None,
        "verdict": group.comparison.verdict if group.comparison else None,
        "note": group.note,
    }
