"""Screening feedback before it becomes a retraining batch: is it someone's attempt to steer the model?

Two signs, each with its evidence kept:
- one API key gave more than ``max_key_share`` of the labels (judged from ``min_rows`` rows up);
- more than ``max_contradiction_share`` of the labels on the champion's answers contradict an answer
  the champion gave with confidence at least ``contradiction_confidence`` (honest corrections of
  confident answers are rare; a flood of them is a label-flipping attack or a broken labeller).
Either one quarantines the export. Labels given with keys off ("anonymous") name no key: the share rule
counts only attributed labels. Pure: rows in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bertloop.core import constants
from bertloop.core.config import DriftConfig


@dataclass(frozen=True)
class PoisoningPolicy:
    max_key_share: float
    min_rows: int
    contradiction_confidence: float
    max_contradiction_share: float

    @classmethod
    def from_config(cls, drift: DriftConfig) -> PoisoningPolicy:
        return cls(
            max_key_share=drift.export_max_key_share,
            min_rows=drift.export_min_rows_for_share,
            contradiction_confidence=drift.export_contradiction_confidence,
            max_contradiction_share=drift.export_max_contradiction_share,
        )


@dataclass(frozen=True)
class PoisoningVerdict:
    quarantined: bool
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)


def screen(labelled: pd.DataFrame, policy: PoisoningPolicy) -> PoisoningVerdict:
    """Judge feedback rows (columns label, given_by, predicted, confidence, role)."""
    rows = len(labelled)
    evidence: dict[str, Any] = {"rows": rows}
    reasons: list[str] = []
    if rows < policy.min_rows:
        return PoisoningVerdict(False, [], {**evidence, "judged": False})
    attributed = labelled["given_by"][~labelled["given_by"].isin([constants.ANONYMOUS_CALLER])].dropna()
    givers = attributed.value_counts()
    evidence["rows_per_key"] = {str(key): int(count) for key, count in givers.items()}
    evidence["unattributed_rows"] = rows - len(attributed)
    if len(attributed) >= policy.min_rows:
        top_key, top_count = str(givers.index[0]), int(givers.iloc[0])
        if top_count / len(attributed) > policy.max_key_share:
            reasons.append(
                f"key {top_key!r} gave {top_count} of {len(attributed)} attributed labels "
                f"({top_count / len(attributed):.0%}); "
                f"at most {policy.max_key_share:.0%} may come from one key"
            )
    answered = labelled[(labelled["role"] == constants.ROLE_CHAMPION) & labelled["predicted"].notna()]
    confident = answered["confidence"].fillna(0) >= policy.contradiction_confidence
    contradicted = answered[confident & (answered["predicted"] != answered["label"])]
    if len(answered):
        share = len(contradicted) / len(answered)
        evidence["contradictions"] = {
            "champion_answers": len(answered),
            "confidently_contradicted": len(contradicted),
            "by_key": {
                str(k): int(v) for k, v in contradicted["given_by"].fillna("unknown").value_counts().items()
            },
            "examples": contradicted[["request_id", "label", "predicted", "confidence", "given_by"]]
            .head(20)
            .to_dict("records"),
        }
        if share > policy.max_contradiction_share:
            reasons.append(
                f"{len(contradicted)} of {len(answered)} labels ({share:.0%}) contradict an answer the "
                f"champion gave with confidence >= {policy.contradiction_confidence:g}; at most "
                f"{policy.max_contradiction_share:.0%} are expected"
            )
    return PoisoningVerdict(bool(reasons), reasons, {**evidence, "judged": True})
