"""Scoring the candidate and the champion on the golden set in one run, and writing the verdict.

Both models are scored here, on the same golden set, in the same run: the
champion's numbers are never copied from the run that trained it. The models
come in as runners and the verdict goes out as files; recording it in the
registry is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertloop.core import constants
from bertloop.core.workspace import write_json_atomic
from evaluation.gate import Decision, GatePolicy, decide
from evaluation.metrics import GoldenScores, plot_confusion_matrix, score
from modeling.runner import ClassifierRunner


@dataclass(frozen=True)
class Evaluation:
    candidate: GoldenScores
    champion: GoldenScores | None
    champion_version: str | None
    decision: Decision

    @property
    def outcome(self) -> str:
        return constants.DECISION_BLESSED if self.decision.blessed else constants.DECISION_NOT_BLESSED

    def metrics(self) -> dict[str, float]:
        """Every number of both models, flattened under the candidate's and the champion's prefixes."""
        metrics = self.candidate.flat(constants.GOLDEN_PREFIX)
        if self.champion is not None:
            metrics.update(self.champion.flat(constants.CHAMPION_PREFIX))
        return metrics


def evaluate(
    candidate: ClassifierRunner,
    champion: ClassifierRunner | None,
    champion_version: str | None,
    texts: Sequence[str],
    truth: Sequence[str],
    labels: Sequence[str],
    policy: GatePolicy,
    batch_size: int,
) -> Evaluation:
    """Score both models on the same golden texts and apply the gate."""
    candidate_scores = score(truth, candidate.score(texts, batch_size).labels, labels)
    champion_scores = (
        score(truth, champion.score(texts, batch_size).labels, labels) if champion is not None else None
    )
    decision = decide(
        candidate_scores.headline(), champion_scores.headline() if champion_scores else None, policy
    )
    return Evaluation(candidate_scores, champion_scores, champion_version, decision)


def write_report(evaluation: Evaluation, folder: Path, verdict: dict[str, object]) -> Path:
    """Confusion matrices of both models and ``decision.json`` (the verdict) into ``folder``."""
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
