"""Scoring the candidate and the champion on the golden set, and recording the verdict.

Both models are scored here, on the same golden set, in the same run: the
champion's numbers are never copied from the run that trained it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bertloop import constants
from bertloop.config import PlatformConfig
from bertloop.data import load_golden_set
from bertloop.workspace import write_json_atomic
from evaluation.gate import GatePolicy, decide
from evaluation.metrics import GoldenScores, plot_confusion_matrix, score


def evaluate_candidate(config: PlatformConfig, run_id: str, model_dir: str, run_dir: Path) -> dict[str, Any]:
    from registry import mlflow_registry as registry
    from training.inference import load_classifier

    client = registry.connect(config)
    golden = load_golden_set(config)
    texts = golden.frame[config.data.text_column].tolist()
    truth = golden.frame[config.data.label_column].tolist()

    candidate = _score_model(*load_classifier(model_dir), texts, truth, config)
    champion = registry.current_champion(client, config.registry.model_name)
    champion_scores: GoldenScores | None = None
    if champion is not None:
        model, tokenizer = registry.load_champion(champion, config.registry.model_name)
        champion_scores = _score_model(_to_device(model), tokenizer, texts, truth, config)

    decision = decide(
        candidate.headline(),
        champion_scores.headline() if champion_scores else None,
        GatePolicy(config.gate.minimums, config.gate.max_regression),
    )
    verdict = {
        "decision": constants.DECISION_BLESSED if decision.blessed else constants.DECISION_NOT_BLESSED,
        "reasons": list(decision.reasons),
        "failed_checks": list(decision.failed),
        "metrics": candidate.headline(),
        "per_class": candidate.per_class,
        "champion_version": champion.version if champion else None,
        "champion_metrics": champion_scores.headline() if champion_scores else None,
        "golden_examples": candidate.examples,
    }
    _record(
        client, run_id, run_dir, candidate, champion_scores, champion.version if champion else None, verdict
    )
    return verdict


def _score_model(
    model: Any, tokenizer: Any, texts: list[str], truth: list[str], config: PlatformConfig
) -> GoldenScores:
    from training.inference import predict

    predictions = predict(
        model, tokenizer, texts, config.training.eval_batch_size, config.training.max_length
    )
    return score(truth, predictions.labels, config.data.labels)


def _to_device(model: Any) -> Any:
    import torch

    return model.to("cuda") if torch.cuda.is_available() else model


def _record(
    client: Any,
    run_id: str,
    run_dir: Path,
    candidate: GoldenScores,
    champion: GoldenScores | None,
    champion_version: str | None,
    verdict: dict[str, Any],
) -> None:
    from registry.mlflow_registry import log_metrics

    metrics = candidate.flat(constants.GOLDEN_PREFIX)
    if champion is not None:
        metrics.update(champion.flat(constants.CHAMPION_PREFIX))
    log_metrics(client, run_id, metrics)
    folder = run_dir / "evaluation"
    plot_confusion_matrix(candidate, "Candidate on the golden set", folder / "confusion_matrix.png")
    if champion is not None:
        plot_confusion_matrix(
            champion,
            f"Champion v{champion_version} on the golden set",
            folder / "champion_confusion_matrix.png",
        )
    write_json_atomic(folder / "decision.json", verdict)
    client.log_artifacts(run_id, str(folder), "evaluation")
    client.set_tag(run_id, constants.TAG_DECISION, verdict["decision"])
    client.set_tag(run_id, constants.TAG_DECISION_REASONS, "; ".join(verdict["reasons"])[:5000])
    client.set_tag(run_id, constants.TAG_CHAMPION_VERSION, str(champion_version or "none"))
