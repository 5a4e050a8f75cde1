"""Every DAG file imports, touches no database or network at parse time, and is wired as designed."""

from __future__ import annotations

import copy
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.conftest import REPO_ROOT

DAGS = REPO_ROOT / "dags"

IGNORED = set((REPO_ROOT / "dags" / ".airflowignore").read_text().split())
DAG_FILES = sorted(path for path in (REPO_ROOT / "dags").glob("*.py") if path.name not in IGNORED)

# Parse a DAG file with sockets and SQLAlchemy connections made to fail loudly.
PARSE_GUARDED = """
import importlib.util, socket, sys
import sqlalchemy.engine

def refuse(*args, **kwargs):
    raise RuntimeError("DAG file opened a connection at parse time")

socket.socket.connect = refuse
socket.create_connection = refuse
sqlalchemy.engine.Engine.connect = refuse
sys.path.insert(0, str(__import__("pathlib").Path(sys.argv[1]).parent))  # as Airflow does for the DAGs folder
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("parsed")
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_dag_file_parses_without_connections(dag_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PARSE_GUARDED, str(dag_file)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "parsed" in result.stdout


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_dag_file_does_not_import_torch_at_parse_time(dag_file: Path) -> None:
    probe = PARSE_GUARDED + "\nassert 'torch' not in sys.modules, 'torch imported at parse time'\n"
    result = subprocess.run(
        [sys.executable, "-c", probe, str(dag_file)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"retrain", "canary", "rollback", "monitor_drift", "readmit_batch"}


def test_each_dag_file_is_named_after_its_dag(dagbag) -> None:
    assert {Path(dag.fileloc).stem for dag in dagbag.dags.values()} == {path.stem for path in DAG_FILES}
    for dag in dagbag.dags.values():
        assert Path(dag.fileloc).stem == dag.dag_id


def test_retrain_is_a_chain_of_steps_that_announces_challengers(dagbag) -> None:
    dag = dagbag.dags["retrain"]
    order = ["ingest", "validate", "version", "train", "evaluate", "register", "announce"]
    assert sorted(dag.task_ids) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.catchup is False
    (outlet,) = dag.get_task("announce").outlets
    assert outlet.uri == "bertloop://registry/challenger"


def test_canary_is_scheduled_on_the_challenger_asset(dagbag) -> None:
    canary = dagbag.dags["canary"]
    assert [asset.uri for asset in canary.timetable.asset_condition.objects] == [
        "bertloop://registry/challenger"
    ]
    assert canary.get_task("roll_out").retries == 0
    assert canary.max_active_runs == 1


def test_rollback_form_requires_a_reason(dagbag) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    rollback = dagbag.dags["rollback"]
    with pytest.raises(ParamValidationError, match="reason"):
        ParamsDict(copy.deepcopy(rollback.params)).validate()
    params = ParamsDict(copy.deepcopy(rollback.params))
    params["reason"] = "bad predictions on refunds"
    assert params.validate()["reason"] == "bad predictions on refunds"


def test_train_runs_on_the_gpu_queue_and_pool_with_retries(dagbag) -> None:
    dag = dagbag.dags["retrain"]
    train = dag.get_task("train")
    assert (train.queue, train.pool) == ("gpu", "gpu_training")
    assert dag.get_task("ingest").queue == "default"
    for task in dag.tasks:
        assert task.retries == 2
        assert task.retry_exponential_backoff


def test_trigger_form_params_are_typed(dagbag) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags["retrain"]
    resolved = ParamsDict(copy.deepcopy(dag.params)).validate()
    assert resolved["data_path"] is None and resolved["epochs"] is None
    with pytest.raises(ParamValidationError, match="epochs"):
        bad = ParamsDict(copy.deepcopy(dag.params))
        bad["epochs"] = -1
    with pytest.raises(ParamValidationError, match="train_on"):
        bad = ParamsDict(copy.deepcopy(dag.params))
        bad["train_on"] = "everything"


def test_no_dag_file_shadows_a_project_package() -> None:
    """Airflow puts the DAGs folder first on sys.path: dags/x.py would hide a package x."""
    import tomllib

    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["packages"]
    assert {path.stem for path in DAG_FILES}.isdisjoint(packages)
