"""The retraining loop as six step functions: ingest, validate, version, train, evaluate, register.

The Airflow DAG and the command line call exactly these functions. Each takes
the configuration and a run key, reads the manifests of the steps before it,
and writes its own manifest last; a step whose manifest exists returns it, so a
retried task never repeats finished work.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

from bertloop import constants
from bertloop.config import PlatformConfig
from bertloop.data import load_golden_set, load_training_frame
from bertloop.lineage import code_version, describe_checkpoint
from bertloop.workspace import Workspace, write_json_atomic
from intake.quarantine import BatchRejected, quarantine_batch, raise_if_quarantined
from intake.reader import UnreadableBatch, read_batch

log = logging.getLogger(__name__)


class NoBatchWaiting(LookupError):
    """No data path was given and the landing folder holds no batch."""


def ingest(
    config: PlatformConfig, run_key: str, source: str | None = None, airflow_run_id: str | None = None
) -> dict[str, Any]:
    """Copy the incoming batch into the workspace under a content-addressed batch id.

    A file taken from the landing folder is claimed (removed there once the copy
    is verified); a file given by path elsewhere is left where it is.
    """
    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_INGEST):
        return done
    path = Path(source).expanduser().resolve() if source else oldest_landing_file(config.data.landing_dir)
    if not path.is_file():
        raise FileNotFoundError(f"batch file {path} does not exist; check data_path")
    digest = sha256_file(path)
    batch_id = f"{_slug(path.stem)}-{digest[:12]}"
    copy = workspace.batches / batch_id / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.is_file() or sha256_file(copy) != digest:
        shutil.copyfile(path, copy)
    if sha256_file(copy) != digest:
        raise OSError(f"copy of {path} to {copy} does not match the original; nothing was removed")
    claimed = path.parent == config.data.landing_dir.resolve()
    if claimed:
        path.unlink()
    return workspace.write_manifest(
        run_key,
        constants.STEP_INGEST,
        {
            "batch_id": batch_id,
            "batch_file": str(copy),
            "source": str(path),
            "sha256": digest,
            "bytes": copy.stat().st_size,
            "claimed_from_landing": claimed,
            "airflow_run_id": airflow_run_id,
        },
    )


def validate(config: PlatformConfig, run_key: str) -> dict[str, Any]:
    """Run the Great Expectations suite; quarantine the batch and raise if it fails."""
    from intake.expectations import validate_frame

    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_VALIDATE):
        return done
    intake = workspace.read_manifest(run_key, constants.STEP_INGEST)
    raise_if_quarantined(workspace.quarantine / intake["batch_id"])
    batch_file = Path(intake["batch_file"])
    golden = load_golden_set(config)
    try:
        frame = read_batch(batch_file, config.data.csv_delimiter)
    except UnreadableBatch as error:
        raise quarantine_batch(
            batch_file, workspace.quarantine / intake["batch_id"], [str(error)], None
        ) from None
    docs = workspace.run_dir(run_key) / "data_docs"
    outcome = validate_frame(frame, config, golden.normalized_texts, data_docs_dir=docs)
    if not outcome.success:
        raise quarantine_batch(
            batch_file, workspace.quarantine / intake["batch_id"], outcome.failures, outcome
        )
    result_path = workspace.run_dir(run_key) / "gx_validation_result.json"
    write_json_atomic(result_path, outcome.result)
    return workspace.write_manifest(
        run_key,
        constants.STEP_VALIDATE,
        {
            "batch_id": intake["batch_id"],
            "passed": True,
            "statistics": outcome.statistics,
            "gx_result": str(result_path),
            "data_docs": str(outcome.data_docs_index),
        },
    )


def version(config: PlatformConfig, run_key: str) -> dict[str, Any]:
    """Version the accepted batch and the golden set with DVC; fix the training snapshot."""
    from versioning.dvc_store import DataRepository

    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_VERSION):
        return done
    intake = workspace.read_manifest(run_key, constants.STEP_INGEST)
    workspace.read_manifest(run_key, constants.STEP_VALIDATE)  # never version an unvalidated batch
    repository = DataRepository(workspace.data_repo)
    batch = repository.add_batch(Path(intake["batch_file"]), intake["batch_id"])
    golden = repository.add_golden(config.data.golden_set)
    if config.training.train_on == "all":
        training_files = repository.batch_files()
    else:
        training_files = [repository.root / batch.path]
    snapshot = [
        f"{path.name}:{repository.md5_of(str(path.relative_to(repository.root)))}" for path in training_files
    ]
    return workspace.write_manifest(
        run_key,
        constants.STEP_VERSION,
        {
            "batch_path": batch.path,
            "batch_md5": batch.md5,
            "golden_path": golden.path,
            "golden_md5": golden.md5,
            "data_repo": str(repository.root),
            "data_rev": repository.head(),
            "training_files": [str(path) for path in training_files],
            "training_data_hash": hashlib.sha256("\n".join(sorted(snapshot)).encode()).hexdigest(),
        },
    )


def train(config: PlatformConfig, run_key: str) -> dict[str, Any]:
    """Fine-tune on the versioned snapshot, logging to this run's MLflow run as it goes."""
    from registry.mlflow_registry import connect, ensure_experiment, find_or_create_run, log_metrics
    from training.callbacks import MlflowMetricsCallback
    from training.finetune import fine_tune, resolve_base_checkpoint

    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_TRAIN):
        return done
    intake = workspace.read_manifest(run_key, constants.STEP_INGEST)
    versioned = workspace.read_manifest(run_key, constants.STEP_VERSION)
    base = resolve_base_checkpoint(config.training.base_checkpoint)
    client = connect(config)
    run_id = find_or_create_run(
        client, ensure_experiment(client, config), run_key, lineage_tags(config, intake, versioned, base)
    )
    _log_params_once(client, run_id, config)
    training_files = [Path(p) for p in versioned["training_files"]]
    run_dir = workspace.run_dir(run_key)
    newest = Path(versioned["data_repo"]) / versioned["batch_path"]  # this run's batch, used whole
    if config.training.world_size > 1:
        from training.distributed import launch

        outcome = launch(config, training_files, base, run_dir, tracking={"run_id": run_id}, newest=newest)
    else:
        frame = load_training_frame(config, training_files, newest=newest)
        outcome = fine_tune(
            texts=frame[config.data.text_column].tolist(),
            labels=frame[config.data.label_column].tolist(),
            label_names=config.data.labels,
            base_checkpoint=base,
            checkpoint_dir=run_dir / "checkpoints",
            model_dir=run_dir / "model",
            settings=config.training,
            callbacks=[MlflowMetricsCallback(client, run_id)],
        )
    log_metrics(
        client, run_id, {"train_examples": outcome.train_examples, "final_train_loss": outcome.train_loss}
    )
    client.set_tag(run_id, "bertloop.hardware", f"{outcome.device}/{outcome.precision}")
    return workspace.write_manifest(
        run_key, constants.STEP_TRAIN, {"mlflow_run_id": run_id, **outcome.to_dict()}
    )


def evaluate(config: PlatformConfig, run_key: str) -> dict[str, Any]:
    """Score candidate and champion on the golden set in this run, and decide."""
    from evaluation.report import evaluate_candidate

    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_EVALUATE):
        return done
    trained = workspace.read_manifest(run_key, constants.STEP_TRAIN)
    verdict = evaluate_candidate(
        config, trained["mlflow_run_id"], trained["model_dir"], workspace.run_dir(run_key)
    )
    return workspace.write_manifest(run_key, constants.STEP_EVALUATE, verdict)


def register(config: PlatformConfig, run_key: str) -> dict[str, Any]:
    """Log and register the model once per training run; alias it if it was blessed."""
    from registry import mlflow_registry as registry

    workspace = Workspace(config.workspace)
    if done := workspace.find_manifest(run_key, constants.STEP_REGISTER):
        return done
    trained = workspace.read_manifest(run_key, constants.STEP_TRAIN)
    verdict = workspace.read_manifest(run_key, constants.STEP_EVALUATE)
    client = registry.connect(config)
    run_id = trained["mlflow_run_id"]
    examples = load_golden_set(config).frame[config.data.text_column].head(2).tolist()
    model_uri = registry.log_transformers_model(
        run_id, trained["model_dir"], examples, config.training.max_length
    )
    # The version carries the same lineage as the run that trained it, plus the verdict.
    run_tags = client.get_run(run_id).data.tags
    tags = {key: value for key, value in run_tags.items() if key.startswith(constants.TAG_PREFIX)}
    tags.update(
        {
            constants.TAG_DECISION: verdict["decision"],
            constants.TAG_DECISION_REASONS: "; ".join(verdict["reasons"])[:5000],
            constants.TAG_CHAMPION_VERSION: str(verdict.get("champion_version") or "none"),
        }
    )
    model_name = config.registry.model_name
    version_number, created = registry.register_version(client, model_name, run_id, model_uri, tags)
    aliases: list[str] = []
    if verdict["decision"] == constants.DECISION_BLESSED:
        from rollout.aliases import AliasChanger
        from rollout.ledger import Ledger

        changer = AliasChanger(client, model_name, Ledger(config.ledger_url), actor=f"retrain:{run_key}")
        alias = (
            constants.CHAMPION_ALIAS
            if changer.current(constants.CHAMPION_ALIAS) is None
            else constants.CHALLENGER_ALIAS
        )
        if changer.current(alias) != version_number:  # a retried task changes (and records) nothing
            changer.set(alias, version_number, "register", {"summary": "; ".join(verdict["reasons"])})
        aliases.append(alias)
    return workspace.write_manifest(
        run_key,
        constants.STEP_REGISTER,
        {
            "model_name": model_name,
            "version": version_number,
            "newly_registered": created,
            "aliases": aliases,
            "decision": verdict["decision"],
            "model_uri": model_uri,
            "mlflow_run_id": run_id,
        },
    )


def run_all(config: PlatformConfig, run_key: str, source: str | None = None) -> dict[str, Any]:
    """The whole loop in one process, for the command line."""
    ingest(config, run_key, source)
    validate(config, run_key)
    version(config, run_key)
    train(config, run_key)
    evaluate(config, run_key)
    return register(config, run_key)


def lineage_tags(
    config: PlatformConfig, intake: dict[str, Any], versioned: dict[str, Any], base: Path
) -> dict[str, str]:
    return {
        constants.TAG_DATA_HASH: versioned["training_data_hash"],
        constants.TAG_DATA_PATH: f"{versioned['data_repo']}@{versioned['data_rev']}",
        "bertloop.batch_id": intake["batch_id"],
        "bertloop.batch_md5": versioned["batch_md5"],
        constants.TAG_GOLDEN_HASH: versioned["golden_md5"],
        constants.TAG_BASE_CHECKPOINT: describe_checkpoint(base, config.training.base_checkpoint),
        constants.TAG_CODE_VERSION: code_version(),
        constants.TAG_CONFIG_HASH: config.config_hash(),
        constants.TAG_AIRFLOW_RUN_ID: intake.get("airflow_run_id") or "none (command line)",
    }


def oldest_landing_file(landing_dir: Path) -> Path:
    candidates = (
        [p for p in landing_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        if landing_dir.is_dir()
        else []
    )
    if not candidates:
        raise NoBatchWaiting(f"no data_path given and no batch waiting in {landing_dir}")
    return min(candidates, key=lambda p: (p.stat().st_mtime, p.name)).resolve()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log_params_once(client: Any, run_id: str, config: PlatformConfig) -> None:
    from mlflow.entities import Param

    logged = client.get_run(run_id).data.params
    params = {f"training.{k}": str(v) for k, v in config.training.model_dump().items()}
    params["labels"] = ",".join(config.data.labels)
    fresh = [Param(key, value) for key, value in params.items() if key not in logged]
    if fresh:
        client.log_batch(run_id, params=fresh)


def _slug(text: str) -> str:
    cleaned = "".join(character if character.isalnum() or character in "-_" else "-" for character in text)
    return cleaned.strip("-")[:40] or "batch"


__all__ = [
    "BatchRejected",
    "NoBatchWaiting",
    "evaluate",
    "ingest",
    "register",
    "run_all",
    "train",
    "validate",
    "version",
]
