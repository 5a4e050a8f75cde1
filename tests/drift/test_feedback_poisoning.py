"""Feedback that looks poisoned is quarantined with its evidence instead of becoming a training batch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from drift import export
from drift.poisoning import PoisoningPolicy, screen

POLICY = PoisoningPolicy(
    max_key_share=0.5, min_rows=20, contradiction_confidence=0.9, max_contradiction_share=0.3
)


def feedback(givers: list[str], flipped: int = 0) -> pd.DataFrame:
    """One row per giver; the first ``flipped`` contradict a confident champion answer."""
    rows = []
    for index, giver in enumerate(givers):
        predicted = "sport"
        rows.append(
            {
                "request_id": f"r{index:03d}",
                "text": f"text number {index}",
                "label": "politics" if index < flipped else predicted,
                "given_by": giver,
                "predicted": predicted,
                "confidence": 0.97,
                "role": constants.ROLE_CHAMPION,
            }
        )
    return pd.DataFrame(rows)


def test_spread_and_agreeing_feedback_passes() -> None:
    verdict = screen(feedback([f"key-{i % 4}" for i in range(40)], flipped=4), POLICY)
    assert not verdict.quarantined and verdict.reasons == []


def test_one_key_over_the_share_is_quarantined_with_the_counts() -> None:
    verdict = screen(feedback(["mallory"] * 30 + [f"key-{i}" for i in range(10)]), POLICY)
    assert verdict.quarantined
    assert "'mallory' gave 30 of 40" in verdict.reasons[0]
    assert verdict.evidence["rows_per_key"]["mallory"] == 30


def test_confident_answers_flipped_in_bulk_are_quarantined() -> None:
    verdict = screen(feedback([f"key-{i % 5}" for i in range(40)], flipped=20), POLICY)
    assert verdict.quarantined and "20 of 40 labels (50%) contradict" in verdict.reasons[0]
    assert verdict.evidence["contradictions"]["confidently_contradicted"] == 20


def test_few_rows_and_anonymous_rows_are_not_judged_by_key() -> None:
    assert not screen(feedback(["mallory"] * 10), POLICY).quarantined  # below min_rows
    anonymous = screen(feedback([constants.ANONYMOUS_CALLER] * 40), POLICY)
    assert not anonymous.quarantined and anonymous.evidence["unattributed_rows"] == 40


def test_a_quarantined_export_lands_in_quarantine_not_in_landing(tmp_path: Path) -> None:
    config = PlatformConfig.model_validate(
        {
            "workspace": tmp_path / "workspace",
            "data": {"labels": ["sport", "politics"], "golden_set": tmp_path / "golden.csv",
                     "landing_dir": tmp_path / "landing"},
        }
    )  # fmt: skip
    labelled = feedback(["mallory"] * 40, flipped=30)
    verdict = screen(labelled, PoisoningPolicy.from_config(config.drift))
    folder = Path(export.quarantine_export(config, labelled, "ab" * 32, verdict))
    assert folder.parent == config.workspace / "quarantine"
    assert not config.data.landing_dir.exists() or not any(config.data.landing_dir.iterdir())
    report = json.loads((folder / constants.QUARANTINE_REPORT_JSON).read_text())
    assert len(report["failures"]) == 2 and (folder / report["batch_file"]).is_file()
    assert "mallory" in (folder / constants.QUARANTINE_REPORT_MD).read_text()
    evidence = json.loads((folder / "poisoning_evidence.json").read_text())
    assert evidence["rows_per_key"] == {"mallory": 40}
    assert len(pd.read_csv(folder / report["batch_file"])) == 40


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_the_policy_rejects_a_share_outside_zero_to_one(share: float) -> None:
    with pytest.raises(ValueError, match="export_max_key_share"):
        PlatformConfig.model_validate(
            {"data": {"labels": ["a", "b"], "golden_set": "g.csv"}, "drift": {"export_max_key_share": share}}
        )
