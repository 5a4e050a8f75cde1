"""
### retrain

Validates an incoming labelled batch, versions it, fine-tunes the classifier,
evaluates it against the golden set and the current champion, and registers it
in MLflow: `ingest → validate → version → train → evaluate → register → announce`.
A newly registered challenger is announced as an Airflow Asset, which starts the
`canary` DAG.

It runs on its cron schedule (`orchestration.schedule`, taking the oldest file
in the landing folder) or when the `monitor_drift` DAG confirms drift (taking the
feedback batch the drift event carries). A person can trigger it with a
**data path** and optional overrides. A batch that fails validation is quarantined with a
readable report and the run fails; nothing is trained on it. The train task runs
on its own queue and pool, so GPU workers pick it up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    chain,
    dag,
    get_current_context,
    task,
)

from bertloop.core.config import load_orchestration
from bertloop.core.constants import DAG_RETRAIN, TRAIN_ON_CONFIGURED
from dag_common import (
    challenger_registered,
    config_path_param,
    drift_confirmed,
    optional_number,
    overrides_param,
)

orchestration = load_orchestration()


def _mark_run_failed(context) -> None:  # type: ignore[no-untyped-def]
    from bertloop.pipeline.orchestration import mark_run_failed

    mark_run_failed(context)


# On the clock (batches in the landing folder) OR when the drift DAG confirms drift.
schedule = (
    AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(orchestration.schedule, timezone="UTC"), assets=drift_confirmed
    )
    if orchestration.schedule
    else drift_confirmed
)


@dag(
    dag_id=DAG_RETRAIN,
    schedule=schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bertloop", "retraining"],
    doc_md=__doc__,
    default_args={
        "retries": orchestration.retries,
        "retry_delay": timedelta(seconds=orchestration.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=orchestration.max_retry_delay_seconds),
        "on_failure_callback": _mark_run_failed,  # after the last retry: the MLflow run is FAILED
    },
    params={
        "data_path": Param(
            None,
            type=["null", "string"],
            title="Data path",
            description="Labelled batch on the workers (CSV, JSONL or Parquet), e.g. /data/batch-07.csv. "
            "Leave empty to take the oldest file in the landing folder (or the batch a drift event carries).",
        ),
        "config_path": config_path_param(),
        "epochs": optional_number(
            "Epochs",
            "At most this many passes over the training data; early stopping may end sooner. "
            "Leave empty for training.epochs (auto: from the batch size).",
            exclusiveMinimum=0,
        ),
        "learning_rate": optional_number(
            "Learning rate",
            "Peak learning rate of the encoder, e.g. 5e-5. "
            "Leave empty for training.learning_rate (auto: scaled with the batch size).",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
        ),
        "batch_size": optional_number(
            "Batch size",
            "Training examples per step and process. "
            "Leave empty for training.batch_size (auto: grows with the data).",
            integer=True,
            minimum=1,
        ),
        "patience": optional_number(
            "Patience",
            "Stop after this many validation scores in a row without improvement (a score comes every "
            "epoch, or every N steps on long epochs); 0 trains every epoch. "
            "Leave empty for training.patience.",
            integer=True,
            minimum=0,
        ),
        "validation_every": optional_number(
            "Validate every (steps)",
            "Score the validation split every this many optimiser steps, e.g. 500. Leave empty for "
            "training.validation_every (auto: once an epoch, or about every 1,000 steps on long epochs).",
            integer=True,
            minimum=1,
        ),
        "max_steps": optional_number(
            "Max steps",
            "Stop after this many optimisation steps (a quick smoke run). "
            "Leave empty for training.max_steps (no cap).",
            integer=True,
            minimum=1,
        ),
        "train_on": Param(
            TRAIN_ON_CONFIGURED,
            type="string",
            enum=[TRAIN_ON_CONFIGURED, "all", "batch"],
            values_display={
                TRAIN_ON_CONFIGURED: "As configured (training.train_on)",
                "all": "Every accepted batch so far",
                "batch": "This batch only",
            },
            title="Train on",
            description="Which data the model is trained on.",
        ),
        "overrides": overrides_param(),
    },
)
def retrain():
    # The steps hand off through the workspace, not XCom: each reads the manifests the
    # steps before it wrote under this run's id (workspace/runs/<run id>/). Each task
    # returns its own manifest to XCom for display; only `announce` reads one.
    def step(name: str, **options):
        @task(task_id=name, **options)
        def run_step() -> dict:
            from bertloop.pipeline.orchestration import run_step

            return run_step(name, get_current_context())

        return run_step()

    @task(outlets=[challenger_registered])
    def announce(registration: dict) -> dict:
        from bertloop.pipeline.orchestration import announce_challenger

        return announce_challenger(registration, get_current_context(), challenger_registered)

    train_on_gpu = {"queue": orchestration.train_queue, "pool": orchestration.train_pool}
    registration = step("register")
    chain(
        step("ingest"),
        step("validate"),
        step("version"),
        step("train", **train_on_gpu),
        step("evaluate"),
        registration,
    )
    announce(registration)


retrain()
