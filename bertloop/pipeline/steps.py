"""The retraining loop as six step functions: ingest, validate, version, train, evaluate, register.

The Airflow DAG and the command line call exactly these functions. Each takes
the configuration and a run key; :func:`step` gives it the run and owns the
bookkeeping every step shares: a step whose manifest exists returns it (a
retried task never repeats finished work), and a step's manifest is written
last. Steps hand off through the workspace: each reads the manifests of the
steps before it under the same run key.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.faults import crash_point
from bertloop.core.hashing import sha256_file, sha256_lines
from bertloop.core.lineage import code_version, describe_checkpoint
from bertloop.core.stores.ledger import BATCH_READMITTED, BATCH_SUSPECT, Ledger, suspect_batches
from bertloop.core.workspace import Workspace, write_json_atomic
from bertloop.pipeline.manifests import (
    Evaluated,
    Ingested,
    Registered,
    StepManifest,
    Trained,
    Validated,
    Versioned,
)
from evaluation.gate import GatePolicy
from evaluation.label_noise import NoisePolicy, check_with_champion
from evaluation.report import evaluate as score_on_golden_set
from evaluation.report import write_report
from evaluation.slices import golden_slices
from intake.datasets import load_golden_set, load_training_frame
from intake.expectations import validate_frame
from intake.landing import NoBatchWaiting, claim_file, claim_oldest, is_in_landing, release
from intake.leakage import GoldenIndex
from intake.quarantine import (
    BatchRejected,
    quarantine_batch,
    raise_if_quarantined,
    too_many_bad_rows,
    write_parquet_atomic,
    write_row_report,
)
from intake.reader import UnreadableBatch, read_batch
from intake.rows import screen_rows
from modeling import infra_sample
from modeling.runner import ClassifierRunner
from registry import mlflow_registry as registry
from rollout.aliases import AliasChanger
from training.checkpoints import prune as prune_checkpoints
from training.entry import TrainingJob, write_training_data
from training.entry import train as run_training
from training.finetune import resolve_base_checkpoint
from versioning.dvc_store import DataRepository

log = logging.getLogger(__name__)
ManifestT = TypeVar("ManifestT", bound=StepManifest)
P = ParamSpec("P")


@dataclass(frozen=True)
class Run:
    """One retraining run: its configuration, its key and its folder in the workspace."""

    config: PlatformConfig
    key: str

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.config.workspace)

    @property
    def folder(self) -> Path:
        return self.workspace.run_dir(self.key)

    def get(self, manifest: type[ManifestT]) -> ManifestT:
        """The manifest an earlier step wrote; says which command to run if it has not run."""
        return manifest.model_validate(self.workspace.read_manifest(self.key, manifest.step))


def step(
    manifest: type[ManifestT],
) -> Callable[
    [Callable[Concatenate[Run, P], ManifestT]], Callable[Concatenate[PlatformConfig, str, P], ManifestT]
]:
    """Make ``body(run, ...)`` a step ``(config, run_key, ...)`` that runs once per run key."""

    def decorate(
        body: Callable[Concatenate[Run, P], ManifestT],
    ) -> Callable[Concatenate[PlatformConfig, str, P], ManifestT]:
        @functools.wraps(body)
        def run_step(config: PlatformConfig, run_key: str, *args: P.args, **kwargs: P.kwargs) -> ManifestT:
            run = Run(config, run_key)
            done = run.workspace.find_manifest(run_key, manifest.step)
            if done is not None:
                return manifest.model_validate(done)
            result = body(run, *args, **kwargs)
            run.workspace.write_manifest(run_key, manifest.step, result.model_dump(mode="json"))
            crash_point(f"{manifest.step}:done")
            return result

        return run_step

    return decorate


@step(Ingested)
def ingest(run: Run, source: str | None = None, airflow_run_id: str | None = None) -> Ingested:
    """Copy the incoming batch into the workspace under a content-addressed batch id.

    A file of the landing folder is claimed by an atomic rename (see
    :mod:`intake.landing`) and removed once its copy is verified and recorded; a
    file given by path elsewhere is left where it is.
    """
    config = run.config
    landing = config.data.landing_dir
    if source:
        given = Path(source).expanduser().absolute()
        if is_in_landing(given, landing):  # e.g. the batch a drift event carries: claimed like any other
            path, claimed = claim_file(landing, run.key, given), True
        else:
            path, claimed = given.resolve(), False
            if not path.is_file():
                raise FileNotFoundError(f"batch file {path} does not exist; check data_path")
    else:
        path, claimed = claim_oldest(landing, run.key, config.data.landing_settle_seconds), True
    if claimed:
        crash_point("ingest:claimed")
    digest = sha256_file(path)
    batch_id = f"{_slug(path.stem)}-{digest[:12]}"
    copy = run.workspace.batches / batch_id / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.is_file() or sha256_file(copy) != digest:
        shutil.copyfile(path, copy)
    if sha256_file(copy) != digest:
        raise OSError(f"copy of {path} to {copy} does not match the original; nothing was removed")
    ingested = Ingested(
        batch_id=batch_id,
        batch_file=str(copy),
        source=str(landing.resolve() / path.name if claimed else path),
        sha256=digest,
        bytes=copy.stat().st_size,
        claimed_from_landing=claimed,
        airflow_run_id=airflow_run_id,
    )
    if claimed:
        # Recorded before the claimed file goes, so a retry after this point returns this
        # manifest instead of claiming the next batch.
        run.workspace.write_manifest(run.key, Ingested.step, ingested.model_dump(mode="json"))
        release(path)
    return ingested


@step(Validated)
def validate(run: Run) -> Validated:
    """Run the Great Expectations suite; quarantine the batch and raise if it fails."""
    config = run.config
    intake = run.get(Ingested)
    folder = run.workspace.quarantine / intake.batch_id
    raise_if_quarantined(folder)
    batch_file = Path(intake.batch_file)
    golden = load_golden_set(config)
    try:
        frame = read_batch(batch_file, config.data.csv_delimiter, config.data.text_column)
    except UnreadableBatch as error:
        raise quarantine_batch(batch_file, folder, [str(error)], None) from None
    golden_texts = golden.frame[config.data.text_column].tolist()
    screen = None
    if config.validation.on_bad_rows == "drop_rows" and {
        config.data.text_column,
        config.data.label_column,
    } <= set(frame.columns):
        index = GoldenIndex(golden_texts) if config.validation.near_duplicate_threshold is not None else None
        screen = screen_rows(frame, config, golden.normalized_texts, index)
        if screen.bad_share > config.validation.max_bad_row_share:
            problem = too_many_bad_rows(screen, config.validation.max_bad_row_share)
            write_row_report(screen, folder, batch_file.name)
            raise quarantine_batch(batch_file, folder, [problem], None)
        frame = screen.kept
    outcome = validate_frame(
        frame,
        config,
        golden.normalized_texts,
        data_docs_dir=run.folder / "data_docs",
        golden_raw_texts=golden_texts,
    )
    if not outcome.success:
        if screen is not None:
            write_row_report(screen, folder, batch_file.name)
        raise quarantine_batch(batch_file, folder, outcome.failures, outcome)
    noise = None
    bounds = config.validation
    if bounds.label_noise_check and not batch_file.name.startswith(constants.DRIFT_BATCH_PREFIX):
        policy = NoisePolicy(
            bounds.label_noise_confidence, bounds.label_noise_margin, bounds.label_noise_alpha
        )
        noise = check_with_champion(config, frame, golden.frame, policy, bounds.label_noise_sample)
        if noise is not None and noise.noisy:
            if screen is not None:
                write_row_report(screen, folder, batch_file.name)
            raise quarantine_batch(batch_file, folder, [noise.describe()], None)
    result_path = run.folder / "gx_validation_result.json"
    write_json_atomic(result_path, outcome.result)
    accepted = None
    if screen is not None and (len(screen.dropped) or screen.repeats):
        # What goes on is the screened remainder; the original stays in the workspace byte for byte.
        write_row_report(screen, folder, batch_file.name)
        accepted = batch_file.parent / "accepted.parquet"
        write_parquet_atomic(screen.kept, accepted)
    return Validated(
        batch_id=intake.batch_id,
        passed=True,
        statistics=outcome.statistics,
        gx_result=str(result_path),
        data_docs=str(outcome.data_docs_index),
        accepted_file=str(accepted) if accepted else None,
        dropped_rows=len(screen.dropped) if screen is not None else 0,
        collapsed_repeats=screen.repeats if screen is not None else 0,
        rows_report=str(folder / constants.QUARANTINE_ROWS_CSV) if accepted else None,
        label_noise=noise.describe() if noise is not None else None,
    )


@step(Versioned)
def version(run: Run) -> Versioned:
    """Version the accepted batch and the golden set with DVC; fix the training snapshot."""
    intake = run.get(Ingested)
    validated = run.get(Validated)  # never version an unvalidated batch
    repository = DataRepository(run.workspace.data_repo)
    accepted = Path(
        validated.accepted_file or intake.batch_file
    )  # the screened rows, where rows were dropped
    batch = repository.add_batch(accepted, intake.batch_id)
    golden = repository.add_golden(run.config.data.golden_set)
    left_out: list[str] = []
    if run.config.training.train_on == "all":
        suspects = suspect_batches(Ledger(run.config.ledger_url).entries(run.config.registry.model_name))
        training_files = []
        for path in repository.batch_files_at(batch.rev):
            if path.stem in suspects and path.stem != intake.batch_id:
                left_out.append(path.stem)
            else:
                training_files.append(path)
    else:
        training_files = [repository.root / batch.path]
    snapshot = [
        f"{path.name}:{repository.md5_of(str(path.relative_to(repository.root)))}" for path in training_files
    ]
    return Versioned(
        batch_path=batch.path,
        batch_md5=batch.md5,
        golden_path=golden.path,
        golden_md5=golden.md5,
        data_repo=str(repository.root),
        data_rev=repository.head(),
        training_files=[str(path) for path in training_files],
        suspect_batches_left_out=left_out,
        training_data_hash=sha256_lines(snapshot),
    )


@step(Trained)
def train(run: Run) -> Trained:
    """Fine-tune on the versioned snapshot, logging to this run's MLflow run as it goes."""
    config = run.config
    intake, versioned = run.get(Ingested), run.get(Versioned)
    base = resolve_base_checkpoint(config.training.base_checkpoint)
    client = registry.connect(config)
    run_id = registry.find_or_create_run(
        client,
        registry.ensure_experiment(client, config),
        run.key,
        lineage_tags(config, intake, versioned, base),
        run_name=run_name(intake, "training"),
    )
    _log_params_once(client, run_id, config)
    newest = Path(versioned.data_repo) / versioned.batch_path  # this run's batch, used whole
    frame = load_training_frame(config, [Path(p) for p in versioned.training_files], newest=newest)
    job = TrainingJob(
        data_file=write_training_data(
            frame, config.data.text_column, config.data.label_column, run.folder / "training-data.parquet"
        ),
        label_names=list(config.data.labels),
        base_checkpoint=base,
        checkpoint_dir=run.folder / "checkpoints",
        model_dir=run.folder / "model",
        settings=config.training,
    )
    outcome = run_training(job, report=lambda metrics, at: registry.log_metrics(client, run_id, metrics, at))
    facts = {
        "train_examples": outcome.train_examples,
        "validation_examples": outcome.validation_examples,
        "final_train_loss": outcome.train_loss,
        "epochs_run": outcome.epochs_run,
    }
    if outcome.temperature is not None:
        facts["temperature"] = outcome.temperature
    if outcome.best_step is not None and outcome.best_metric is not None:
        facts["best_step"] = outcome.best_step
        facts[f"best_validation_{config.training.best_model_metric}"] = outcome.best_metric
    registry.log_metrics(client, run_id, facts)
    # Classes the validation scores (and the kept checkpoint's choice) say nothing about.
    unvalidated = ",".join(outcome.unvalidated_classes) or "none"
    if not outcome.validation_examples:
        unvalidated = "all (no validation split)"
    _log_fresh_params(client, run_id, {**outcome.recipe, constants.PARAM_UNVALIDATED_CLASSES: unvalidated})
    client.set_tag(run_id, "bertloop.hardware", f"{outcome.device}/{outcome.precision}")
    client.set_tag(run_id, constants.TAG_TRAINING_STOP, outcome.stop_note)
    client.set_tag(run_id, constants.TAG_TRAINING_RECIPE, "; ".join(outcome.reasons)[:5000])
    return Trained(mlflow_run_id=run_id, **outcome.__dict__)


@step(Evaluated)
def evaluate(run: Run) -> Evaluated:
    """Score candidate and champion on the golden set in this run, decide, and record the verdict."""
    config = run.config
    trained = run.get(Trained)
    client = registry.connect(config)
    golden = load_golden_set(config)
    max_length = config.training.max_length
    champion = registry.current_champion(client, config.registry.model_name)
    champion_runner = (
        ClassifierRunner.from_components(
            *registry.load_version(config.registry.model_name, champion.version), max_length
        )
        if champion
        else None
    )
    evaluation = score_on_golden_set(
        ClassifierRunner.from_directory(trained.model_dir, max_length),
        champion_runner,
        champion.version if champion else None,
        golden.frame[config.data.text_column].tolist(),
        golden.frame[config.data.label_column].tolist(),
        config.data.labels,
        GatePolicy.from_config(config.gate),
        config.training.eval_batch_size,
        golden_slices(golden.frame, config.data.text_column, config.gate),
    )
    verdict = Evaluated(
        decision=evaluation.outcome,
        reasons=list(evaluation.decision.reasons),
        failed_checks=list(evaluation.decision.failed),
        metrics=evaluation.candidate.headline(),
        per_class=evaluation.candidate.per_class,
        champion_version=evaluation.champion_version,
        champion_metrics=evaluation.champion.headline() if evaluation.champion else None,
        golden_examples=evaluation.candidate.examples,
        **evaluation.details(),
    )
    folder = write_report(evaluation, run.folder / "evaluation", verdict.model_dump(mode="json"))
    # What the gateway proves this version on before routing it a request (serving.infra_sample_size).
    infra_sample.save(
        infra_sample.draw(
            golden.frame[config.data.text_column].tolist(),
            golden.frame[config.data.label_column].tolist(),
            evaluation.predicted,
            config.serving.infra_sample_size,
            seed=config.training.seed,
        ),
        folder / constants.INFRA_SAMPLE_FILE,
    )
    registry.record_evaluation(
        client, trained.mlflow_run_id, evaluation.metrics(), folder, verdict_tags(verdict)
    )
    return verdict


@step(Registered)
def register(run: Run) -> Registered:
    """Log and register the model once per training run; alias it if it was blessed."""
    config = run.config
    trained, verdict = run.get(Trained), run.get(Evaluated)
    client = registry.connect(config)
    examples = load_golden_set(config).frame[config.data.text_column].head(2).tolist()
    model_uri = registry.log_transformers_model(
        trained.mlflow_run_id, trained.model_dir, examples, config.training.max_length
    )
    # The version carries the same lineage as the run that trained it, plus the verdict.
    run_tags = client.get_run(trained.mlflow_run_id).data.tags
    tags = {key: value for key, value in run_tags.items() if key.startswith(constants.TAG_PREFIX)}
    tags.update(verdict_tags(verdict))
    model_name = config.registry.model_name
    version_number, created = registry.register_version(
        client, model_name, trained.mlflow_run_id, model_uri, tags
    )
    aliases: list[str] = []
    crash_point("register:before-alias")
    if verdict.decision == constants.DECISION_BLESSED:
        changer = AliasChanger(client, model_name, Ledger(config.ledger_url), actor=f"retrain:{run.key}")
        with run.workspace.lock("aliases"):  # two runs registering at once decide one after the other
            aliases = changer.place_blessed(
                version_number,
                tags.get(constants.TAG_GOLDEN_HASH),
                verdict.metrics[constants.METRIC_MACRO_F1],
                "; ".join(verdict.reasons),
            )
    outcome = f"{verdict.decision.replace('_', ' ')} v{version_number}" + (
        f" ({aliases[0]})" if aliases else ""
    )
    client.update_run(trained.mlflow_run_id, name=run_name(run.get(Ingested), outcome))
    if verdict.decision != constants.DECISION_BLESSED:
        mark_suspect(config, run.get(Ingested).batch_id, version_number, verdict, actor=f"retrain:{run.key}")
    client.set_terminated(trained.mlflow_run_id, "FINISHED")  # never left RUNNING in the MLflow UI
    if not config.training.keep_checkpoints:  # the model is registered; resuming is no longer needed
        freed = prune_checkpoints(run.folder / "checkpoints")
        log.info("removed %.1f MB of training checkpoints", freed / 1e6)
    return Registered(
        model_name=model_name,
        version=version_number,
        newly_registered=created,
        aliases=aliases,
        decision=verdict.decision,
        model_uri=model_uri,
        mlflow_run_id=trained.mlflow_run_id,
    )


def mark_suspect(config: PlatformConfig, batch_id: str, version: str, verdict: Evaluated, actor: str) -> None:
    """A batch whose model was not blessed stays out of later snapshots until a person re-admits it."""
    ledger = Ledger(config.ledger_url)
    if batch_id in suspect_batches(ledger.entries(config.registry.model_name)):
        return  # a retried task records nothing twice
    reason = verdict.failed_checks[0] if verdict.failed_checks else "not blessed"
    summary = f"batch {batch_id}: v{version} was not blessed ({reason[:300]})"
    ledger.append(
        actor, BATCH_SUSPECT, config.registry.model_name, to_version=version,
        evidence={"batch_id": batch_id, "summary": summary},
    )  # fmt: skip


def readmit(config: PlatformConfig, batch_id: str, actor: str, reason: str) -> dict[str, str]:
    """Let a suspect batch back into ``train_on: all`` snapshots, with who and why in the ledger."""
    if len(reason.strip()) < 3:
        raise ValueError("give a reason (at least 3 characters): it goes into the promotion ledger")
    ledger = Ledger(config.ledger_url)
    suspects = suspect_batches(ledger.entries(config.registry.model_name))
    if batch_id not in suspects:
        known = ", ".join(sorted(suspects)) or "none"
        raise ValueError(f"batch {batch_id!r} is not suspect; suspect batches: {known}")
    ledger.append(
        actor, BATCH_READMITTED, config.registry.model_name,
        evidence={"batch_id": batch_id, "summary": f"batch {batch_id} re-admitted: {reason.strip()}"},
    )  # fmt: skip
    return {"batch_id": batch_id, "readmitted_by": actor, "reason": reason.strip()}


def run_all(config: PlatformConfig, run_key: str, source: str | None = None) -> Registered:
    """The whole loop in one process, for the command line."""
    try:
        ingest(config, run_key, source)
        validate(config, run_key)
        version(config, run_key)
        train(config, run_key)
        evaluate(config, run_key)
        return register(config, run_key)
    except BaseException:
        mark_run_failed(config, run_key)
        raise


def mark_run_failed(config: PlatformConfig, run_key: str) -> None:
    """The run's MLflow run, if training started one, is FAILED rather than RUNNING forever.

    Best effort: it runs while another error is being reported, so its own failure is only logged.
    A retry of the run resumes the same MLflow run (RUNNING again).
    """
    try:
        registry.end_run(registry.connect(config), config.registry.experiment, run_key, "FAILED")
    except Exception as error:
        log.warning("could not mark the MLflow run of %s as failed: %s", run_key, error)


def verdict_tags(verdict: Evaluated) -> dict[str, str]:
    return {
        constants.TAG_DECISION: verdict.decision,
        constants.TAG_DECISION_REASONS: "; ".join(verdict.reasons)[:5000],
        constants.TAG_CHAMPION_VERSION: str(verdict.champion_version or "none"),
        **{f"{constants.TAG_GOLDEN_PREFIX}{name}": text for name, text in verdict.intervals.items()},
        **{
            f"{constants.TAG_GOLDEN_PREFIX}{name}": f"{value:.4f}"
            for name, value in verdict.calibration.get("candidate", {}).items()
        },
    }


def run_name(intake: Ingested, outcome: str) -> str:
    """What the MLflow UI lists: the DAG, the batch as it was named, the outcome, e.g.
    ``retrain · bbc-batch-02 · blessed v2 (challenger)``."""
    return f"retrain · {Path(intake.source).stem} · {outcome}"


def lineage_tags(
    config: PlatformConfig, intake: Ingested, versioned: Versioned, base: Path
) -> dict[str, str]:
    return {
        constants.TAG_DATA_HASH: versioned.training_data_hash,
        constants.TAG_DATA_PATH: f"{versioned.data_repo}@{versioned.data_rev}",
        "bertloop.batch_id": intake.batch_id,
        "bertloop.batch_md5": versioned.batch_md5,
        constants.TAG_GOLDEN_HASH: versioned.golden_md5,
        constants.TAG_BASE_CHECKPOINT: describe_checkpoint(base, config.training.base_checkpoint),
        constants.TAG_CODE_VERSION: code_version(),
        constants.TAG_CONFIG_HASH: config.config_hash(),
        constants.TAG_AIRFLOW_RUN_ID: intake.airflow_run_id or "none (command line)",
    }


def training_texts(config: PlatformConfig, version_number: str) -> list[str]:
    """The texts a registered version was trained on, found through its lineage (the drift reference)."""
    facts = registry.version_facts(registry.connect(config), config.registry.model_name, version_number)
    if not facts.run_key:
        raise LookupError(
            f"version {version_number} has no {constants.TAG_RUN_KEY} tag; its training data is unknown"
        )
    versioned = Run(config, facts.run_key).get(Versioned)
    frame = load_training_frame(config, [Path(p) for p in versioned.training_files])
    return frame[config.data.text_column].tolist()


def _log_params_once(client: Any, run_id: str, config: PlatformConfig) -> None:
    params = {f"training.{k}": str(v) for k, v in config.training.model_dump().items()}
    params["labels"] = ",".join(config.data.labels)
    _log_fresh_params(client, run_id, params)


def _log_fresh_params(client: Any, run_id: str, params: dict[str, str]) -> None:
    """MLflow params are write-once: a retried step logs only those its first attempt did not."""
    from mlflow.entities import Param

    logged = client.get_run(run_id).data.params
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
