"""One drift check: a window of the prediction log against the champion's training data.

The reference is the champion's own training snapshot (found through its
lineage) and the champion's predictions on it, computed once per champion
version and cached. Input drift uses the champion's tokenizer and encoder;
prediction drift uses what the gateway logged; performance drift uses feedback.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bertloop import constants
from bertloop.config import PlatformConfig
from drift.detectors import (
    Signal,
    accuracy_drift,
    confidence_drift,
    label_drift,
    mmd_permutation_test,
    text_length_drift,
    unknown_token_drift,
)

log = logging.getLogger(__name__)
REFERENCE_FORMAT = "r2"  # bump when the cached reference's contents change


@dataclass(frozen=True)
class Features:
    lengths: np.ndarray
    token_ids: list[list[int]]
    embeddings: np.ndarray
    labels: list[str]
    confidences: np.ndarray


def featurize(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 32
) -> Features:
    """Word-piece lengths, token ids, mean-pooled sentence embeddings and predictions, in one pass."""
    import torch

    lengths, token_ids, embeddings, labels, confidences = [], [], [], [], []
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            full = tokenizer(chunk, add_special_tokens=False, truncation=False)["input_ids"]
            lengths += [len(ids) for ids in full]
            token_ids += full
            encoded = tokenizer(
                chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            outputs = model(**encoded, output_hidden_states=True)
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            hidden = outputs.hidden_states[-1]
            embeddings.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy())
            probabilities = outputs.logits.float().softmax(-1).cpu()
            best = probabilities.max(-1)
            labels += [model.config.id2label[int(i)] for i in best.indices]
            confidences += best.values.tolist()
    return Features(
        lengths=np.array(lengths),
        token_ids=token_ids,
        embeddings=np.vstack(embeddings) if embeddings else np.zeros((0, 1)),
        labels=labels,
        confidences=np.array(confidences),
    )


@dataclass(frozen=True)
class Reference:
    version: str
    lengths: np.ndarray
    token_counts: Counter[int]  # vocabulary counts from one half of the reference
    rare_tokens: int  # rare word pieces in the other half: an out-of-sample share
    total_tokens: int
    embeddings: np.ndarray
    label_counts: dict[str, int]
    confidences: np.ndarray
    accuracy: float | None


def build_reference(config: PlatformConfig, version: str, model: Any, tokenizer: Any) -> Reference:
    """The champion's training data (through its lineage) and the champion's predictions on it; cached."""
    from bertloop.data import load_training_frame
    from bertloop.workspace import Workspace
    from registry.mlflow_registry import connect

    cache = config.workspace / "drift" / f"reference-v{version}-{REFERENCE_FORMAT}.npz"
    client = connect(config)
    model_version = client.get_model_version(config.registry.model_name, version)
    run = client.get_run(model_version.run_id)
    accuracy = run.data.metrics.get(f"{constants.GOLDEN_PREFIX}{constants.METRIC_ACCURACY}")
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        return Reference(
            version, stored["lengths"], Counter({int(k): v for k, v in meta["token_counts"].items()}),
            meta["rare_tokens"], meta["total_tokens"], stored["embeddings"], meta["label_counts"],
            stored["confidences"], accuracy,
        )  # fmt: skip
    run_key = run.data.tags.get(constants.TAG_RUN_KEY)
    if not run_key:
        raise LookupError(
            f"version {version} has no {constants.TAG_RUN_KEY} tag; its training data is unknown"
        )
    versioned = Workspace(config.workspace).read_manifest(run_key, constants.STEP_VERSION)
    frame = load_training_frame(config, [Path(p) for p in versioned["training_files"]])
    frame = frame.sample(min(len(frame), config.drift.reference_size), random_state=config.drift.seed)
    features = featurize(
        model, tokenizer, frame[config.data.text_column].tolist(), config.training.max_length
    )
    vocabulary, rare_tokens, total_tokens = rare_token_reference(
        features.token_ids, config.drift.rare_token_count
    )
    reference = Reference(
        version,
        features.lengths,
        vocabulary,
        rare_tokens,
        total_tokens,
        features.embeddings,
        dict(Counter(features.labels)),
        features.confidences,
        accuracy,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "token_counts": {str(k): v for k, v in reference.token_counts.items()},
        "label_counts": reference.label_counts,
        "rare_tokens": reference.rare_tokens,
        "total_tokens": reference.total_tokens,
    }
    np.savez(cache, lengths=reference.lengths, embeddings=reference.embeddings,
             confidences=reference.confidences, meta=json.dumps(meta))  # fmt: skip
    return reference


def rare_token_reference(
    token_ids: Sequence[Sequence[int]], rare_count: int
) -> tuple[Counter[int], int, int]:
    """Vocabulary from half the reference; the rare share counted on the other half.

    Measured in sample, the reference would look less rare than any unseen text
    (every word piece of its own is known), and every live window would alarm.
    """
    vocabulary = Counter(token for ids in token_ids[::2] for token in ids)
    held = [token for ids in token_ids[1::2] for token in ids]
    return vocabulary, sum(vocabulary[token] <= rare_count for token in held), len(held)


def window_rows(config: PlatformConfig, champion: str, start: float, end: float) -> list[dict[str, Any]]:
    """What the champion answered in the window, with any feedback."""
    from serving.prediction_log import feedback, make_engine, predictions

    engine = make_engine(config.prediction_log_url)
    query = (
        sa.select(predictions, feedback.c.label.label("true_label"))
        .outerjoin(feedback, feedback.c.request_id == predictions.c.request_id)
        .where(
            predictions.c.ts >= start,
            predictions.c.ts < end,
            predictions.c.model_version == champion,
            predictions.c.role != constants.ROLE_SHADOW,
            predictions.c.status == "ok",
        )
        .order_by(predictions.c.ts)
    )
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def detect(
    config: PlatformConfig,
    reference: Reference,
    rows: Sequence[dict[str, Any]],
    window: Features | None,
) -> list[Signal]:
    """Every signal the window supports; input signals need texts (absent when the log is redacted)."""
    policy = config.drift
    signals: list[Signal] = []
    if window is not None and len(window.lengths):
        signals.append(text_length_drift(reference.lengths, window.lengths, policy.alpha))
        win_tokens = [token for ids in window.token_ids for token in ids]
        win_rare = sum(reference.token_counts[token] <= policy.rare_token_count for token in win_tokens)
        signals.append(
            unknown_token_drift(
                reference.rare_tokens, reference.total_tokens, win_rare, len(win_tokens), policy.alpha
            )
        )
        generator = np.random.default_rng(policy.seed)
        ref_sample = _sample(reference.embeddings, policy.embedding_sample, generator)
        win_sample = _sample(window.embeddings, policy.embedding_sample, generator)
        signals.append(
            mmd_permutation_test(ref_sample, win_sample, policy.alpha, policy.permutations, policy.seed)
        )
    window_labels = Counter(row["label"] for row in rows)
    signals.append(
        label_drift(reference.label_counts, dict(window_labels), policy.alpha, policy.psi_threshold)
    )
    signals.append(confidence_drift(reference.confidences, [row["confidence"] for row in rows], policy.alpha))
    judged = [row for row in rows if row.get("true_label")]
    if reference.accuracy is not None and len(judged) >= policy.min_feedback:
        correct = sum(row["label"] == row["true_label"] for row in judged)
        signals.append(
            accuracy_drift(reference.accuracy, correct, len(judged), policy.alpha, policy.accuracy_margin)
        )
    return signals


def confirmed(signals: Sequence[Signal], min_signals: int) -> bool:
    """Embedding drift alone confirms (it sees meaning); otherwise enough signals must agree."""
    fired = [signal for signal in signals if signal.drifted]
    return any(signal.name == "embedding_mmd" for signal in fired) or len(fired) >= min_signals


def _sample(matrix: np.ndarray, size: int, generator: np.random.Generator) -> np.ndarray:
    if len(matrix) <= size:
        return matrix
    return matrix[generator.choice(len(matrix), size, replace=False)]
