"""The retrain DAG run for real through Airflow (dag.test) on a tiny BERT, then the registry checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import load_config
from tests.conftest import synthetic_rows, write_config
from tests.e2e.conftest import asset_events, run_state, task_state

pytestmark = pytest.mark.e2e


def test_two_runs_give_champion_then_challenger_and_a_bad_batch_fails(
    dags, tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame
) -> None:
    config_file = write_config(
        tmp_path, tiny_checkpoint, golden_frame, **{"training.learning_rate": 0.005, "training.epochs": 8}
    )
    config = load_config(config_file, environ={})
    exclude = set(golden_frame["text"])
    first_batch, second_batch = tmp_path / "batch-01.csv", tmp_path / "batch-02.parquet"
    synthetic_rows(16, seed=11, exclude=exclude).to_csv(first_batch, index=False)
    synthetic_rows(16, seed=12, exclude=exclude).to_parquet(second_batch)

    first = dags["retrain"].test(run_conf={"data_path": str(first_batch), "config_path": str(config_file)})
    assert run_state(first) == "success"
    second = dags["retrain"].test(
        run_conf={"data_path": str(second_batch), "config_path": str(config_file), "epochs": 10}
    )
    assert run_state(second) == "success"

    from registry.mlflow_registry import connect

    client = connect(config)
    name = config.registry.model_name
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    aliases = client.get_registered_model(name).aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"champion": "1", "challenger": "2"}
    for version, dag_run in zip(versions, (first, second), strict=True):
        tags = version.tags
        assert tags[constants.TAG_AIRFLOW_RUN_ID] == dag_run.run_id
        for key in (
            constants.TAG_DATA_HASH,
            constants.TAG_GOLDEN_HASH,
            constants.TAG_BASE_CHECKPOINT,
            constants.TAG_CODE_VERSION,
            constants.TAG_CONFIG_HASH,
            constants.TAG_DECISION_REASONS,
        ):
            assert tags[key], key
    # Only the challenger is announced: the asset event that starts the canary DAG.
    assert task_state(first, "announce") == "skipped"
    assert task_state(second, "announce") == "success"
    events = asset_events(constants.CHALLENGER_ASSET_URI)
    assert [event.extra["version"] for event in events] == ["2"]
    # The trigger form's epochs override reached the configuration of the second run only.
    assert versions[0].tags[constants.TAG_CONFIG_HASH] != versions[1].tags[constants.TAG_CONFIG_HASH]
    assert client.get_run(versions[1].run_id).data.params["training.epochs"] == "10.0"
    # A small BERT trained on separable topics learns them; the gate saw both models.
    metrics = client.get_run(versions[1].run_id).data.metrics
    assert metrics["golden_accuracy"] > 0.6
    assert "champion_golden_accuracy" in metrics

    bad_batch = tmp_path / "batch-03.csv"
    synthetic_rows(16, seed=13, exclude=exclude).assign(label="weather").to_csv(bad_batch, index=False)
    original = bad_batch.read_bytes()
    third = dags["retrain"].test(run_conf={"data_path": str(bad_batch), "config_path": str(config_file)})
    assert run_state(third) == "failed"
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in third.get_task_instances()}
    assert states["validate"] == "failed" and states["train"] != "success"
    quarantined = list((config.workspace / "quarantine").glob("*/batch-03.csv"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == original == bad_batch.read_bytes()
    assert (
        "unknown label: 'weather' is not in data.labels" in (quarantined[0].parent / "report.md").read_text()
    )
    assert len(client.search_model_versions(f"name = '{name}'")) == 2  # nothing trained on it
