"""Turning the feedback gathered since the champion was trained into a labelled batch for retraining."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.hashing import sha256_lines
from bertloop.core.stores import predictions
from bertloop.core.workspace import Workspace, write_json_atomic
from drift.poisoning import PoisoningVerdict
from intake.quarantine import quarantine_batch


def labelled_feedback(prediction_log_url: str, since: float) -> pd.DataFrame:
    """Texts with true labels given since ``since``, whatever model answered them; one row per text."""
    rows = predictions.labelled_texts_since(prediction_log_url, since)
    columns = ["request_id", "text", "label", "given_by", "predicted", "confidence", "role"]
    return pd.DataFrame([asdict(row) for row in rows], columns=columns).drop_duplicates("text")


def snapshot_id(labelled: pd.DataFrame) -> str:
    """The feedback snapshot's fingerprint: storm control refuses a second retrain on the same one."""
    return sha256_lines(labelled["request_id"])


def write_batch(config: PlatformConfig, labelled: pd.DataFrame, snapshot: str) -> str:
    """The feedback as a labelled batch in the landing folder: it goes through validation like any batch."""
    path = config.data.landing_dir / f"{constants.DRIFT_BATCH_PREFIX}{snapshot[:12]}.csv"
    _write_csv(config, labelled, path)
    return str(path)


def quarantine_export(
    config: PlatformConfig, labelled: pd.DataFrame, snapshot: str, verdict: PoisoningVerdict
) -> str:
    """Feedback that looks poisoned goes to quarantine with the evidence, never to the landing folder."""
    name = f"{constants.DRIFT_BATCH_PREFIX}{snapshot[:12]}"
    folder = Workspace(config.workspace).quarantine / name
    staged = folder.parent / ".staging" / f"{name}.csv"
    _write_csv(config, labelled, staged)
    quarantine_batch(staged, folder, verdict.reasons, None)
    write_json_atomic(folder / "poisoning_evidence.json", verdict.evidence)
    return str(folder)


def _write_csv(config: PlatformConfig, labelled: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled.rename(columns={"text": config.data.text_column, "label": config.data.label_column})[
        [config.data.text_column, config.data.label_column]
    ].to_csv(path, index=False)
