"""The steps without Airflow, on a tiny BERT and a real MLflow (SQLite) and DVC repository."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import PlatformConfig, load_config
from bertloop.core.workspace import StepNotRun
from bertloop.pipeline import steps
from tests.conftest import synthetic_rows, write_config


def _client(config: PlatformConfig):
    from registry.mlflow_registry import connect

    return connect(config)


def test_loop_registers_champion_then_challenger_with_lineage(
    platform_config: PlatformConfig, good_batch: Path, golden_frame: pd.DataFrame, tmp_path: Path
) -> None:
    first = steps.run_all(platform_config, "first", str(good_batch))
    assert (first.version, first.aliases) == ("1", [constants.CHAMPION_ALIAS])

    second_batch = tmp_path / "incoming" / "batch-02.jsonl"
    synthetic_rows(12, seed=2, exclude=set(golden_frame["text"])).to_json(
        second_batch, orient="records", lines=True
    )
    second = steps.run_all(platform_config, "second", str(second_batch))
    assert (second.version, second.aliases) == ("2", [constants.CHALLENGER_ALIAS])
    client = _client(platform_config)
    names = {client.get_run(r.mlflow_run_id).info.run_name for r in (first, second)}
    assert names == {
        "retrain · batch-01 · blessed v1 (champion)",
        "retrain · batch-02 · blessed v2 (challenger)",
    }
    assert client.get_run(second.mlflow_run_id).data.tags[constants.TAG_RUN_KEY] == "second"

    client = _client(platform_config)
    version = client.get_model_version(platform_config.registry.model_name, "2")
    tags = version.tags
    versioned = json.loads((platform_config.workspace / "runs" / "second" / "version.json").read_text())
    assert tags[constants.TAG_DATA_HASH] == versioned["training_data_hash"]
    assert tags[constants.TAG_GOLDEN_HASH] == versioned["golden_md5"]
    assert tags[constants.TAG_CONFIG_HASH] == platform_config.config_hash()
    assert tags[constants.TAG_BASE_CHECKPOINT] == platform_config.training.base_checkpoint
    assert tags[constants.TAG_CODE_VERSION].startswith("0.1.0")
    assert tags[constants.TAG_DECISION] == constants.DECISION_BLESSED
    assert tags[constants.TAG_CHAMPION_VERSION] == "1"
    # Both models were scored on the golden set in the second run.
    metrics = client.get_run(version.run_id).data.metrics
    assert {"golden_accuracy", "golden_macro_f1", "champion_golden_macro_f1", "golden_f1_sport"} <= set(
        metrics
    )
    assert any(step > 0 for step in [m.step for m in client.get_metric_history(version.run_id, "train_loss")])
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evaluation")}
    assert "evaluation/champion_confusion_matrix.png" in artifacts
    # train_on=all: the second model saw both batches, and DVC holds each one.
    assert len(versioned["training_files"]) == 2
    assert versioned["batch_md5"] == tags["bertloop.batch_md5"]


def test_retried_register_creates_no_second_version(
    platform_config: PlatformConfig, good_batch: Path
) -> None:
    first = steps.run_all(platform_config, "run", str(good_batch))
    manifest = platform_config.workspace / "runs" / "run" / "register.json"
    manifest.unlink()  # as if the task died after registering but before recording it
    again = steps.register(platform_config, "run")
    assert again.version == first.version and again.newly_registered is False
    client = _client(platform_config)
    assert len(client.search_model_versions(f"name = '{platform_config.registry.model_name}'")) == 1


def test_unblessed_model_is_registered_without_alias(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame, good_batch: Path
) -> None:
    config = load_config(
        write_config(tmp_path, tiny_checkpoint, golden_frame, **{"gate.minimums": {"accuracy": 1.01}}),
        environ={},
    )
    result = steps.run_all(config, "strict", str(good_batch))
    assert result.decision == constants.DECISION_NOT_BLESSED and result.aliases == []
    verdict = json.loads((config.workspace / "runs" / "strict" / "evaluate.json").read_text())
    assert verdict["failed_checks"] == [
        f"accuracy {verdict['metrics']['accuracy']:.4f} is below the minimum 1.0100"
    ]
    client = _client(config)
    assert client.get_registered_model(config.registry.model_name).aliases == {}


def test_steps_out_of_order_say_what_to_run(platform_config: PlatformConfig) -> None:
    with pytest.raises(StepNotRun, match=r"run `bertloop ingest --run-key nope` first"):
        steps.validate(platform_config, "nope")
