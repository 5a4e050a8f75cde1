"""What the end-to-end DAG tests share: a migrated Airflow database, the parsed DAGs, and their states."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

DAGS = REPO_ROOT / "dags"


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    """A migrated SQLite metadata database, and every DAG as Airflow parses it."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ, timeout=300
    )
    from airflow.dag_processing.dagbag import BundleDagBag

    # BundleDagBag puts dags/ on sys.path, as Airflow's DAG processor and task runner do.
    return dict(BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS).dags)


def run_state(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def task_state(dag_run: Any, task_id: str) -> str:
    (instance,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return str(getattr(instance.state, "value", instance.state))


def asset_events(uri: str) -> list[Any]:
    """Every event Airflow recorded for the asset with this URI."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session
    from sqlalchemy import select

    with Session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
        )
        return list(session.scalars(query))
