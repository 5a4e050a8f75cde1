"""The trigger forms: every field explained, optional fields submit empty, enums offer real choices.

Airflow's own validation (ParamsDict.validate, what the UI and the REST API run) is applied to
each DAG's defaults and to values a person would type, and the result is read back through the
same function the tasks use to build their configuration.
"""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from bertloop.core import constants
from bertloop.pipeline.orchestration import CANARY_PARAM_SETTINGS, config_from_params

DAG_IDS = [
    constants.DAG_RETRAIN,
    constants.DAG_CANARY,
    constants.DAG_ROLLBACK,
    constants.DAG_DRIFT,
    constants.DAG_READMIT,
]


def _validated(dag, **values) -> dict:
    params = ParamsDict(copy.deepcopy(dag.params))  # setting a value would change the DAG's own Param
    for key, value in values.items():
        params[key] = value
    return params.validate()


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_field_has_a_title_and_a_description(dagbag, dag_id: str) -> None:
    for name, param in dagbag.dags[dag_id].params.items():
        schema = param.schema
        assert schema.get("title"), f"{dag_id}.{name} has no title"
        assert len(param.description or "") > 15, f"{dag_id}.{name} has no useful description"
        if "enum" in schema:
            assert None not in schema["enum"], f"{dag_id}.{name} offers null as a choice"
            assert set(schema.get("values_display", {})) == set(schema["enum"]), f"{dag_id}.{name}"


@pytest.mark.parametrize("dag_id", [constants.DAG_RETRAIN, constants.DAG_CANARY, constants.DAG_DRIFT])
def test_the_form_submits_with_its_defaults_and_changes_nothing(dagbag, dag_id: str, config_file) -> None:
    resolved = _validated(dagbag.dags[dag_id], config_path=str(config_file))
    optional = {name for name, param in dagbag.dags[dag_id].params.items() if "null" in param.schema["type"]}
    assert optional == set(resolved) - {"train_on"}  # every field but the enum may stay empty
    from bertloop.core.config import load_config

    assert config_from_params(resolved) == load_config(config_file)


def test_rollback_cannot_be_submitted_without_a_reason(dagbag) -> None:
    rollback = dagbag.dags[constants.DAG_ROLLBACK]
    with pytest.raises(ParamValidationError, match="reason"):
        _validated(rollback)
    assert _validated(rollback, reason="refund intents misrouted")["reason"] == "refund intents misrouted"


def test_typical_retrain_values_reach_the_configuration(dagbag, config_file) -> None:
    resolved = _validated(
        dagbag.dags[constants.DAG_RETRAIN],
        config_path=str(config_file),
        data_path="/data/batch-07.csv",
        epochs=3,
        learning_rate=1e-4,
        max_steps=10,
        batch_size=32,
        patience=0,
        validation_every=500,
        train_on="batch",
        overrides={"gate.minimums": {"macro_f1": 0.8}, "training.head_learning_rate_multiplier": 1},
    )
    config = config_from_params(resolved)
    assert (config.training.epochs, config.training.learning_rate, config.training.max_steps) == (3, 1e-4, 10)
    assert (config.training.batch_size, config.training.patience) == (32, 0)
    assert config.training.validation_every == 500
    assert config.training.head_learning_rate_multiplier == 1
    assert config.training.train_on == "batch" and config.gate.minimums["macro_f1"] == 0.8
    assert resolved["data_path"] == "/data/batch-07.csv"


def test_train_on_as_configured_keeps_the_files_setting(
    dagbag, tmp_path, tiny_checkpoint, golden_frame
) -> None:
    from tests.conftest import write_config

    config_file = write_config(tmp_path, tiny_checkpoint, golden_frame, **{"training.train_on": "batch"})
    resolved = _validated(dagbag.dags[constants.DAG_RETRAIN], config_path=str(config_file))
    assert resolved["train_on"] == constants.TRAIN_ON_CONFIGURED
    assert config_from_params(resolved).training.train_on == "batch"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("learning_rate", 2.0),
        ("max_steps", 0),
        ("batch_size", 0),
        ("patience", -1),
        ("validation_every", 0),
        ("train_on", "everything"),
        ("overrides", "x"),
    ],
)
def test_bad_retrain_values_are_refused_by_the_form(dagbag, field: str, value: object) -> None:
    with pytest.raises(ParamValidationError, match=field):
        _validated(dagbag.dags[constants.DAG_RETRAIN], **{field: value})


def test_typical_canary_values_reach_the_configuration(dagbag, config_file) -> None:
    resolved = _validated(
        dagbag.dags[constants.DAG_CANARY],
        config_path=str(config_file),
        steps=[10, 50, 100],
        bake_seconds=60,
        min_requests_per_step=50,
    )
    canary = config_from_params(resolved, CANARY_PARAM_SETTINGS).canary
    assert (canary.steps, canary.bake_seconds, canary.min_requests_per_step) == ([10, 50, 100], 60, 50)


def test_readmit_needs_a_batch_and_a_reason(dagbag) -> None:
    readmit = dagbag.dags[constants.DAG_READMIT]
    with pytest.raises(ParamValidationError, match=r"batch_id|reason"):
        _validated(readmit)
    values = _validated(readmit, batch_id="bbc-batch-03-1a2b3c", reason="labels re-checked")
    assert values["batch_id"] == "bbc-batch-03-1a2b3c"
