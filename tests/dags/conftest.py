"""The DAGs as Airflow parses them, shared by the integrity and trigger-form tests."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

DAGS = REPO_ROOT / "dags"


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)  # puts dags/ on sys.path, as Airflow does
