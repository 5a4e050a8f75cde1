"""
### canary

Rolls the MLflow `challenger` out through the serving gateway: its share of
callers rises in steps (default 5% → 25% → 50% → 100%), each baked for a while
and judged against the champion on live traffic (error rate, p95 latency,
agreement, confidence distribution, and accuracy where feedback exists).
All steps pass: the challenger becomes `champion`, the old one
`previous_champion`. A step fails: the share goes back to 0 and the
`challenger` alias is removed, with the reasons tagged on the model version.
Every alias change is in the promotion ledger (`bertloop ledger`).

Starts by itself when `retrain` registers a challenger; can be triggered by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from bertloop.core.constants import DAG_CANARY
from dag_common import challenger_registered, config_path_param, optional_number, overrides_param


@dag(
    dag_id=DAG_CANARY,
    schedule=[challenger_registered],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bertloop", "serving"],
    doc_md=__doc__,
    params={
        "config_path": config_path_param(),
        "steps": Param(
            None,
            type=["null", "array"],
            items={"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            title="Steps (% of callers)",
            description="The canary's share at each step, rising to 100, one per line, e.g. 5, 25, 50, 100. "
            "Leave empty for canary.steps.",
        ),
        "bake_seconds": optional_number(
            "Bake time per step (s)",
            "How long each step runs before it is judged. Leave empty for canary.bake_seconds.",
            minimum=0,
        ),
        "min_requests_per_step": optional_number(
            "Minimum requests per step",
            "Canary requests a step needs before it is judged. Leave empty for canary.min_requests_per_step.",
            integer=True,
            minimum=1,
        ),
        "overrides": overrides_param(),
    },
)
def canary():
    # No retries: a half-finished rollout is rolled back by the controller itself, and
    # re-running a ramp must be a person's (or a new challenger's) decision.
    @task(retries=0, execution_timeout=timedelta(hours=12))
    def roll_out() -> dict:
        from bertloop.pipeline.orchestration import run_canary_step

        return run_canary_step(get_current_context())

    roll_out()


canary()
