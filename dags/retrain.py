"""
### retrain

Validates an incoming labelled batch, versions it, fine-tunes the classifier,
evaluates it against the golden set and the current champion, and registers it
in MLflow: `ingest → validate → version → train → evaluate → register → announce`.
A newly registered challenger is announced as an Airflow Asset, which starts the
`canary` DAG.

It runs on its cron schedule (`orchestration.schedule`, taking the oldest file
in the landing folder) or when the `drift` DAG confirms drift (taking the
feedback batch the drift event carries). A person can trigger it with a
**data path** and optional overrides. A batch that fails validation is quarantined with a
readable report and the run fails; nothing is trained on it. The train task runs
on its own queue and pool, so GPU workers pick it up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from bertloop.config import load_orchestration
from bertloop.constants import (
    CHALLENGER_ASSET_NAME,
    CHALLENGER_ASSET_URI,
    DAG_RETRAIN,
    DRIFT_ASSET_NAME,
    DRIFT_ASSET_URI,
)
from bertloop.dag_params import config_path_param, overrides_param

orchestration = load_orchestration()
challenger_registered = Asset(name=CHALLENGER_ASSET_NAME, uri=CHALLENGER_ASSET_URI)
drift_confirmed = Asset(name=DRIFT_ASSET_NAME, uri=DRIFT_ASSET_URI)
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
    },
    params={
        "data_path": Param(
            "",
            type="string",
            title="Data path",
            description="Labelled batch (CSV, JSONL or Parquet). Empty: oldest file in the landing folder.",
        ),
        "config_path": config_path_param(),
        "epochs": Param(None, type=["null", "number"], exclusiveMinimum=0, title="Epochs"),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0, title="Learning rate"),
        "max_steps": Param(None, type=["null", "integer"], title="Max steps (positive caps training)"),
        "train_on": Param(None, type=["null", "string"], enum=[None, "all", "batch"], title="Train on"),
        "overrides": overrides_param(),
    },
)
def retrain():
    @task
    def ingest() -> dict:
        from bertloop.orchestration import run_step

        return run_step("ingest", get_current_context())

    @task
    def validate(batch: dict) -> dict:
        from bertloop.orchestration import run_step

        return run_step("validate", get_current_context())

    @task
    def version(report: dict) -> dict:
        from bertloop.orchestration import run_step

        return run_step("version", get_current_context())

    @task(queue=orchestration.train_queue, pool=orchestration.train_pool)
    def train(snapshot: dict) -> dict:
        from bertloop.orchestration import run_step

        return run_step("train", get_current_context())

    @task
    def evaluate(model: dict) -> dict:
        from bertloop.orchestration import run_step

        return run_step("evaluate", get_current_context())

    @task
    def register(verdict: dict) -> dict:
        from bertloop.orchestration import run_step

        return run_step("register", get_current_context())

    @task(outlets=[challenger_registered])
    def announce(registration: dict) -> dict:
        from bertloop.orchestration import announce_challenger

        return announce_challenger(registration, get_current_context(), challenger_registered)

    batch = ingest()
    report = validate(batch)
    snapshot = version(report)
    model = train(snapshot)
    verdict = evaluate(model)
    registration = register(verdict)
    announce(registration)


retrain()
