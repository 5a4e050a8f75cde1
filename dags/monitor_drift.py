"""
### monitor_drift

Every hour (`drift.schedule`), compares a window of the prediction log with the
champion's training data and its predictions on it: text length, unknown or
rare word pieces, sentence-embedding MMD, predicted-label mix, confidence, and
accuracy where feedback exists. Each window gets a JSON summary and an HTML
report. Confirmed drift that storm control allows (no retrain running, new
data, cooldown over) exports the labelled feedback as a batch and emits the
`bertloop://drift/confirmed` asset, which starts `retrain` on it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, get_current_context, task

from bertloop.core.config import DriftConfig, load_section
from bertloop.core.constants import DAG_DRIFT
from dag_common import config_path_param, drift_confirmed, overrides_param

drift_settings = load_section("drift", DriftConfig)


@dag(
    dag_id=DAG_DRIFT,
    schedule=drift_settings.schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bertloop", "monitoring"],
    doc_md=__doc__,
    params={
        "config_path": config_path_param(),
        "overrides": overrides_param(),
    },
)
def monitor_drift():
    @task
    def check() -> dict:
        from bertloop.pipeline.orchestration import run_drift_check

        return run_drift_check(get_current_context())

    @task(outlets=[drift_confirmed])
    def start_retrain(outcome: dict) -> dict:
        from bertloop.pipeline.orchestration import announce_drift

        return announce_drift(outcome, get_current_context(), drift_confirmed)

    start_retrain(check())


monitor_drift()
