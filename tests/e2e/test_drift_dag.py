"""The drift DAG through Airflow: confirmed drift emits the asset that schedules retrain, with its data."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from tests.conftest import Registry
from tests.drift.test_drift_check import NEW_TOPIC, _log_window
from tests.e2e.conftest import asset_events, task_state

pytestmark = pytest.mark.e2e
DRIFT_SETTINGS = {
    "drift.min_window_size": 60,
    "drift.reference_size": 120,
    "drift.embedding_sample": 120,
    "drift.permutations": 100,
    "drift.min_feedback": 20,
    "drift.window_minutes": 5,
}


def test_confirmed_drift_emits_the_asset_that_schedules_retrain(dags, two_versions: Registry) -> None:
    generator = random.Random(9)
    texts = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(90)]
    _log_window(two_versions.config, texts, ["tech"] * 90, time.time() - 30)
    conf = {"config_path": str(two_versions.config_file), "overrides": DRIFT_SETTINGS}

    run = dags[constants.DAG_DRIFT].test(run_conf=conf)
    assert task_state(run, "start_retrain") == "success"
    (event,) = asset_events(constants.DRIFT_ASSET_URI)
    assert "embedding_mmd" in event.extra["signals"]
    exported = pd.read_csv(event.extra["data_path"])
    assert len(exported) == 90 and set(exported["label"]) == {"tech"}

    # Storm control: the same drift on the same feedback does not start a second retrain.
    again = dags[constants.DAG_DRIFT].test(run_conf=conf)
    assert task_state(again, "start_retrain") == "skipped"
    assert len(asset_events(constants.DRIFT_ASSET_URI)) == 1

    # retrain listens to that asset (or its clock), and its ingest takes the batch the event carries.
    condition = dags["retrain"].timetable.asset_condition
    assert constants.DRIFT_ASSET_URI in {asset.uri for asset in getattr(condition, "objects", [condition])}
    from bertloop.pipeline.orchestration import drift_data_path

    class Asset:
        uri = constants.DRIFT_ASSET_URI

    assert drift_data_path({"triggering_asset_events": {Asset(): [event]}}) == event.extra["data_path"]


def test_quiet_traffic_starts_no_retrain(dags, two_versions: Registry, tmp_path: Path) -> None:
    from tests.conftest import synthetic_rows

    steady = synthetic_rows(30, seed=78)
    _log_window(two_versions.config, steady["text"].tolist(), steady["label"].tolist(), time.time() + 3600)
    conf = {"config_path": str(two_versions.config_file), "overrides": DRIFT_SETTINGS}
    before = len(asset_events(constants.DRIFT_ASSET_URI))
    # The window sits an hour ahead so only the steady rows are in it.
    import unittest.mock

    with unittest.mock.patch("time.time", return_value=time.time() + 3600 + 1):
        run = dags[constants.DAG_DRIFT].test(run_conf=conf)
    assert task_state(run, "start_retrain") == "skipped"
    assert len(asset_events(constants.DRIFT_ASSET_URI)) == before
