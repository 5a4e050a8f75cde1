"""
### rollback

Restores the MLflow `previous_champion` as `champion` in one step, stops any
canary rollout, and records who did it and why in the promotion ledger.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from bertloop.core.constants import DAG_ROLLBACK
from dag_common import config_path_param


@dag(
    dag_id=DAG_ROLLBACK,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bertloop", "serving"],
    doc_md=__doc__,
    params={
        "reason": Param(
            "",
            type="string",
            minLength=3,
            title="Reason",
            description="Required: why the champion is rolled back, e.g. 'refund intents misrouted since "
            "v7'. It goes into the promotion ledger.",
        ),
        "config_path": config_path_param(),
    },
)
def rollback():
    @task(retries=0)
    def restore_previous_champion() -> dict:
        from bertloop.pipeline.orchestration import run_rollback

        return run_rollback(get_current_context())

    restore_previous_champion()


rollback()
