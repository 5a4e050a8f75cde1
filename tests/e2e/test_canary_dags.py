"""The canary and rollback DAGs run for real through Airflow (dag.test), against live prediction rows."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import pytest

from bertloop.core.stores.ledger import Ledger
from bertloop.core.stores.predictions import PredictionLog, PredictionRow
from tests.conftest import Registry
from tests.e2e.conftest import run_state, task_state

pytestmark = pytest.mark.e2e


def _live_traffic(log: PredictionLog, stop: threading.Event, canary_label: str = "sport") -> None:
    """What the gateway writes while a canary runs: answers from both models, mirrored by the champion."""
    while not stop.is_set():
        rows = []
        for _ in range(10):
            canary_id = uuid.uuid4().hex
            for request_id, version, role, mirror in (
                (uuid.uuid4().hex, "1", "champion", None),
                (canary_id, "2", "canary", None),
                (uuid.uuid4().hex, "1", "shadow", canary_id),
            ):
                label = canary_label if role == "canary" else "sport"
                row = PredictionRow(request_id, time.time(), "c", version, role, "ok", 10.0, label, 0.9)
                rows.append(row if mirror is None else dataclasses.replace(row, mirror_of=mirror))
        log.record(rows)
        time.sleep(0.1)


def _canary_under_traffic(dags, registry: Registry, canary_label: str):
    log = PredictionLog(registry.config.prediction_log_url)
    stop = threading.Event()
    writer = threading.Thread(target=_live_traffic, args=(log, stop, canary_label))
    writer.start()
    try:
        return dags["canary"].test(
            run_conf={
                "config_path": str(registry.config_file),
                "steps": [50, 100],
                "bake_seconds": 0.5,
                "min_requests_per_step": 20,
                # Disagreement with no feedback would wait for labels; fail it as soon as it is seen.
                "overrides": {"canary.step_timeout_seconds": 3},
            }
        )
    finally:
        stop.set()
        writer.join()
        log.close()


def test_a_rolled_back_canary_is_a_failed_run_with_the_reason(dags, two_versions: Registry) -> None:
    run = _canary_under_traffic(dags, two_versions, canary_label="politics")  # never agrees
    assert run_state(run) == "failed" and task_state(run, "roll_out") == "failed"
    aliases = two_versions.client().get_registered_model(two_versions.config.registry.model_name).aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"champion": "1"}
    assert Ledger(two_versions.config.ledger_url).entries()[-1].action == "canary_rollback"
    two_versions.set_alias("challenger", "2")  # restore the module's registry for the next test


def test_canary_dag_promotes_and_rollback_dag_restores(dags, two_versions: Registry) -> None:
    canary = _canary_under_traffic(dags, two_versions, canary_label="sport")
    assert run_state(canary) == "success"
    aliases = two_versions.client().get_registered_model(two_versions.config.registry.model_name).aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {
        "champion": "2",
        "previous_champion": "1",
    }

    rollback = dags["rollback"].test(
        run_conf={"config_path": str(two_versions.config_file), "reason": "refund intents misrouted"}
    )
    assert run_state(rollback) == "success"
    aliases = two_versions.client().get_registered_model(two_versions.config.registry.model_name).aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"champion": "1"}
    last = Ledger(two_versions.config.ledger_url).entries()[-1]
    assert (
        last.actor.startswith("airflow:rollback:") and last.evidence["summary"] == "refund intents misrouted"
    )


def test_rollback_without_a_previous_champion_fails_with_the_reason(dags, two_versions: Registry) -> None:
    run = dags["rollback"].test(
        run_conf={"config_path": str(two_versions.config_file), "reason": "just checking"}
    )
    assert run_state(run) == "failed"
