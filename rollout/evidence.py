"""Turning a window of the prediction log into the evidence of one canary step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bertloop.core import constants
from bertloop.core.stores.predictions import rows_since
from rollout.decision import ArmStats, StepEvidence


def collect(prediction_log_url: str, since: float, champion: str, canary: str) -> StepEvidence:
    rows = rows_since(prediction_log_url, since, [champion, canary])
    return evidence_from_rows(rows, champion, canary)


def evidence_from_rows(rows: Sequence[Mapping[str, Any]], champion: str, canary: str) -> StepEvidence:
    by_request = {row["request_id"]: row for row in rows}
    pairs = agreements = 0
    for row in rows:
        original = by_request.get(row["mirror_of"]) if row["mirror_of"] else None
        if original is None or {row["model_version"], original["model_version"]} != {champion, canary}:
            continue
        if row["status"] == "ok" and original["status"] == "ok":
            pairs += 1
            agreements += row["label"] == original["label"]
    return StepEvidence(
        champion=_arm([row for row in rows if row["model_version"] == champion]),
        canary=_arm([row for row in rows if row["model_version"] == canary]),
        agreement_pairs=pairs,
        agreements=agreements,
    )


def _arm(rows: Sequence[Mapping[str, Any]]) -> ArmStats:
    ok = [row for row in rows if row["status"] == "ok"]
    judged = [row for row in ok if row.get("true_label")]
    # Latency of answered requests only: mirrored scoring runs in the background, so its
    # timing says nothing about what callers wait for.
    latencies = [row["latency_ms"] for row in rows if row["role"] != constants.ROLE_SHADOW]
    return ArmStats(
        requests=len(rows),
        errors=len(rows) - len(ok),
        p95_latency_ms=float(np.percentile(latencies, 95)) if latencies else None,
        confidences=tuple(float(row["confidence"]) for row in ok),
        feedback_total=len(judged),
        feedback_correct=sum(row["label"] == row["true_label"] for row in judged),
        answered=len(latencies),
        latencies_ms=tuple(float(latency) for latency in latencies),
    )
