"""What each step of a retraining run hands to the next: one typed manifest per step.

A step writes its manifest last, atomically, into ``workspace/runs/<run-key>/<step>.json``;
the next step reads it back through the same model, so a renamed or missing
field fails at once instead of deep inside a later step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from bertloop.core import constants


class StepManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    step: ClassVar[str]


class Ingested(StepManifest):
    step: ClassVar[str] = constants.STEP_INGEST
    batch_id: str
    batch_file: str
    source: str
    sha256: str
    bytes: int
    claimed_from_landing: bool
    airflow_run_id: str | None = None


class Validated(StepManifest):
    step: ClassVar[str] = constants.STEP_VALIDATE
    batch_id: str
    passed: bool
    statistics: dict[str, Any]
    gx_result: str
    data_docs: str


class Versioned(StepManifest):
    step: ClassVar[str] = constants.STEP_VERSION
    batch_path: str
    batch_md5: str
    golden_path: str
    golden_md5: str
    data_repo: str
    data_rev: str
    training_files: list[str]
    training_data_hash: str


class Trained(StepManifest):
    step: ClassVar[str] = constants.STEP_TRAIN
    mlflow_run_id: str
    model_dir: str
    device: str
    precision: str
    global_step: int
    train_loss: float
    resumed_from: str | None
    train_examples: int


class Evaluated(StepManifest):
    step: ClassVar[str] = constants.STEP_EVALUATE
    decision: str
    reasons: list[str]
    failed_checks: list[str]
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    golden_examples: int


class Registered(StepManifest):
    step: ClassVar[str] = constants.STEP_REGISTER
    model_name: str
    version: str
    newly_registered: bool
    aliases: list[str]
    decision: str
    model_uri: str
    mlflow_run_id: str
