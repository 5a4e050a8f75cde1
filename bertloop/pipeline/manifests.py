"""What each step of a retraining run hands to the next: one typed manifest per step.

A step writes its manifest last, atomically, into ``workspace/runs/<run-key>/<step>.json``;
the next step reads it back through the same model, so a renamed or missing
field fails at once instead of deep inside a later step.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

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
    # With validation.on_bad_rows=drop_rows: the screened rows that go on (None: the batch whole).
    accepted_file: str | None = None
    dropped_rows: int = 0
    collapsed_repeats: int = 0
    rows_report: str | None = None
    label_noise: str | None = None  # the champion's view of the labels; None: no champion yet


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
    # Batches left out of this snapshot because their model was not blessed (until re-admitted).
    suspect_batches_left_out: list[str] = Field(default_factory=list)


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
    validation_examples: int = 0
    temperature: float | None = None
    recipe: dict[str, str] = Field(default_factory=dict)  # batch, learning rates, epochs as used
    reasons: list[str] = Field(default_factory=list)  # why the split and the recipe are as they are
    unvalidated_classes: list[str] = Field(default_factory=list)  # no validation rows: not in its scores
    epochs_run: float = 0.0
    best_step: int | None = None  # whose weights were kept; None: the last step's
    best_metric: float | None = None  # its validation score (training.best_model_metric)
    stop_reason: str = ""
    stop_note: str = ""  # the reason, the epochs run and the step kept, in words
    learning_curve: list[tuple[float, int, float]] = Field(default_factory=list)  # (epoch, step, score)


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
    # Each golden metric as people read it: "0.925 (0.890–0.960, n=200)".
    intervals: dict[str, str] = Field(default_factory=dict)
    comparisons: list[dict[str, Any]] = Field(default_factory=list)
    classes: list[dict[str, Any]] = Field(default_factory=list)
    slices: list[dict[str, Any]] = Field(default_factory=list)
    calibration: dict[str, dict[str, float]] = Field(default_factory=dict)
    advice: list[str] = Field(default_factory=list)


class Registered(StepManifest):
    step: ClassVar[str] = constants.STEP_REGISTER
    model_name: str
    version: str
    newly_registered: bool
    aliases: list[str]
    decision: str
    model_uri: str
    mlflow_run_id: str
