"""A thin adapter over MLflow tracking and the model registry.

Every write is idempotent by construction: runs are found again by their run
key, logged models by their source run, model versions by their run id. A task
that Airflow retries therefore reuses what its first try created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bertloop.core import constants
from bertloop.core.config import PlatformConfig


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    source: str


@dataclass(frozen=True)
class VersionFacts:
    """What the drift check and storm control need to know of a registered version."""

    version: str
    run_id: str
    trained_at: float  # start of the training run, seconds since the epoch
    run_key: str | None
    golden_accuracy: float | None


def connect(config: PlatformConfig) -> Any:
    """Point MLflow at the configured tracking server and return the process's client for it."""
    import mlflow

    config.workspace.mkdir(parents=True, exist_ok=True)
    # The fluent API (mlflow.transformers.log_model) reads the global URI; set it here.
    if mlflow.get_tracking_uri() != config.tracking_uri:
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.tracking_uri)
    return _client(config.tracking_uri)


@lru_cache(maxsize=8)
def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    # MLflow creates and migrates a new SQLite database on first use; two processes doing it at
    # once (two runs started together on a fresh workspace) collide on alembic's temporary tables.
    from filelock import FileLock

    with FileLock(f"{tracking_uri.removeprefix('sqlite:///')}.lock", timeout=600):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    return client


def ensure_experiment(client: Any, config: PlatformConfig) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(config.registry.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(
            client.create_experiment(config.registry.experiment, artifact_location=config.artifact_location)
        )
    except MlflowException:  # another run created it a moment ago
        experiment = client.get_experiment_by_name(config.registry.experiment)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def find_or_create_run(
    client: Any, experiment_id: str, run_key: str, tags: Mapping[str, str], run_name: str | None = None
) -> str:
    """The MLflow run of this retraining run; created once, found again on retries.

    ``run_name`` is what people read in the MLflow UI; the run key stays a tag.
    """
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{constants.TAG_RUN_KEY}` = '{run_key}'", max_results=1
    )
    if existing:
        found = existing[0].info
        if found.status != "RUNNING":  # a retry after a failure resumes the same run
            client.update_run(found.run_id, status="RUNNING")
        return str(found.run_id)
    run = client.create_run(
        experiment_id, run_name=run_name or run_key, tags={constants.TAG_RUN_KEY: run_key, **tags}
    )
    return str(run.info.run_id)


def end_run(client: Any, experiment_name: str, run_key: str, status: str) -> str | None:
    """Mark the MLflow run of a retraining run FINISHED or FAILED, if it is still RUNNING."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{constants.TAG_RUN_KEY}` = '{run_key}'",
        max_results=1,
    )
    if not found:
        return None
    if found[0].info.status == "RUNNING":
        client.set_terminated(found[0].info.run_id, status)
    return str(found[0].info.run_id)


def current_champion(client: Any, model_name: str) -> Champion | None:
    version = _version_by_alias(client, model_name, constants.CHAMPION_ALIAS)
    if version is None:
        return None
    return Champion(version=str(version.version), run_id=str(version.run_id), source=str(version.source))


def version_for_alias(client: Any, model_name: str, alias: str) -> str | None:
    version = _version_by_alias(client, model_name, alias)
    return None if version is None else str(version.version)


def _version_by_alias(client: Any, model_name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def canary_percent(client: Any, model_name: str) -> float:
    """The share of traffic the canary controller has given the challenger (0 when unset)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(model_name).tags
    except MlflowException:
        return 0.0
    return float(tags.get(constants.TAG_CANARY_PERCENT, 0.0))


def set_canary_percent(client: Any, model_name: str, percent: float) -> None:
    client.set_registered_model_tag(model_name, constants.TAG_CANARY_PERCENT, f"{percent:g}")


def load_version(model_name: str, version: str) -> tuple[Any, Any]:
    """A registered version's model and tokenizer."""
    import mlflow.transformers

    components = mlflow.transformers.load_model(f"models:/{model_name}/{version}", return_type="components")
    return components["model"], components["tokenizer"]


def infra_sample_of(client: Any, model_name: str, version: str, folder: Path) -> Path | None:
    """The golden sample stored with ``version``'s evaluation, downloaded into ``folder``; None for a
    version evaluated before samples were kept."""
    import mlflow.artifacts

    run_id = client.get_model_version(model_name, version).run_id
    wanted = f"evaluation/{constants.INFRA_SAMPLE_FILE}"
    if not run_id or wanted not in {item.path for item in client.list_artifacts(run_id, "evaluation")}:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    stored = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=wanted, dst_path=str(folder))
    return Path(stored)


def version_tag(client: Any, model_name: str, version: str, key: str) -> str | None:
    return client.get_model_version(model_name, version).tags.get(key)


def set_version_tag(client: Any, model_name: str, version: str, key: str, value: str) -> None:
    client.set_model_version_tag(model_name, version, key, value[:5000])


def version_facts(client: Any, model_name: str, version: str) -> VersionFacts:
    model_version = client.get_model_version(model_name, version)
    run = client.get_run(model_version.run_id)
    return VersionFacts(
        version=str(version),
        run_id=str(model_version.run_id),
        trained_at=run.info.start_time / 1000,
        run_key=run.data.tags.get(constants.TAG_RUN_KEY),
        golden_accuracy=run.data.metrics.get(f"{constants.GOLDEN_PREFIX}{constants.METRIC_ACCURACY}"),
    )


@dataclass(frozen=True)
class GoldenFacts:
    golden_hash: str | None
    macro_f1: float | None


def golden_comparison_facts(client: Any, model_name: str, version: str) -> GoldenFacts:
    """A version's golden-set hash and the golden macro-F1 its evaluation recorded."""
    model_version = client.get_model_version(model_name, version)
    metrics = client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    return GoldenFacts(
        golden_hash=model_version.tags.get(constants.TAG_GOLDEN_HASH),
        macro_f1=metrics.get(f"{constants.GOLDEN_PREFIX}{constants.METRIC_MACRO_F1}"),
    )


def consecutive_unblessed(client: Any, model_name: str) -> int:
    """How many of the newest registered versions in a row the gate did not bless."""
    versions = sorted(client.search_model_versions(f"name = '{model_name}'"), key=lambda v: -int(v.version))
    unblessed = 0
    for version in versions:
        if version.tags.get(constants.TAG_DECISION) != constants.DECISION_NOT_BLESSED:
            break
        unblessed += 1
    return unblessed


def record_evaluation(
    client: Any, run_id: str, metrics: Mapping[str, float], folder: Path, tags: Mapping[str, str]
) -> None:
    """The evaluation's metrics, its report folder (as artifacts under ``evaluation/``) and its tags."""
    log_metrics(client, run_id, metrics)
    client.log_artifacts(run_id, str(folder), "evaluation")
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_metrics(client: Any, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    timestamp = _millis()
    batch = [Metric(key, float(value), timestamp, step) for key, value in metrics.items()]
    for start in range(0, len(batch), 500):
        client.log_batch(run_id, metrics=batch[start : start + 500])


def logged_model_uri(run_id: str) -> str | None:
    """The model already logged by this run, if a previous try got that far."""
    import mlflow

    models = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run_id}' AND name = '{constants.MODEL_ARTIFACT}'",
        output_format="list",
    )
    return models[0].model_uri if models else None


def log_transformers_model(run_id: str, model_dir: str, example_texts: list[str], max_length: int) -> str:
    """Log the fine-tuned model (transformers flavour, signature and input example)."""
    import mlflow
    import mlflow.transformers
    from mlflow.models import infer_signature
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    existing = logged_model_uri(run_id)
    if existing:
        return existing
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    example_output = [{"label": model.config.id2label[0], "score": 1.0}]
    signature = infer_signature(example_texts, example_output)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name=constants.MODEL_ARTIFACT,
            task="text-classification",
            signature=signature,
            input_example=example_texts,
            pip_requirements=_pip_requirements(),
            # Served through MLflow, long texts are cut as in training instead of overflowing
            # the position embeddings.
            model_config={"truncation": True, "max_length": max_length},
        )
    return str(info.model_uri)


def register_version(
    client: Any, model_name: str, run_id: str, model_uri: str, tags: Mapping[str, str]
) -> tuple[str, bool]:
    """Register ``model_uri`` once per training run. Returns (version, created)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    existing = client.search_model_versions(f"name = '{model_name}' AND run_id = '{run_id}'")
    if existing:
        version = str(existing[0].version)
        created = False
    else:
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            try:
                client.create_registered_model(
                    model_name, description="BERT-family text classifier kept fresh by bertloop."
                )
            except MlflowException:  # another run registered the first version a moment ago
                client.get_registered_model(model_name)
        version = str(mlflow.register_model(model_uri, model_name).version)
        created = True
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version, created


def set_alias(client: Any, model_name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(model_name, alias, version)


def _pip_requirements() -> list[str]:
    # Explicit, so MLflow does not infer (and ask for) torchvision.
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("torch", "transformers", "tokenizers", "mlflow")]


def _millis() -> int:
    import time

    return int(time.time() * 1000)
