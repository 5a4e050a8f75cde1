"""
### readmit_batch

Lets a suspect batch back into later `train_on: all` training snapshots. A batch
becomes suspect when the model trained on it is not blessed; it then stays out
of every later snapshot until a person looks at it and re-admits it here (or
with `bertloop readmit`). Who did it and why go into the promotion ledger.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from bertloop.core.constants import DAG_READMIT
from dag_common import config_path_param


@dag(
    dag_id=DAG_READMIT,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["bertloop", "data"],
    doc_md=__doc__,
    params={
        "batch_id": Param(
            "",
            type="string",
            minLength=3,
            title="Batch id",
            description="The suspect batch, e.g. 'bbc-batch-03-1a2b3c4d5e6f' (see `bertloop ledger`, "
            "entries 'batch_suspect').",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            title="Reason",
            description="Required: why the batch may be trained on again, e.g. 'labels re-checked by hand'.",
        ),
        "config_path": config_path_param(),
    },
)
def readmit_batch():
    @task(retries=0)
    def readmit() -> dict:
        from bertloop.pipeline.orchestration import run_readmit

        return run_readmit(get_current_context())

    readmit()


readmit_batch()
