"""The steps without Airflow, on a tiny BERT and a real MLflow (SQLite) and DVC repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import PlatformConfig, load_config
from bertloop.core.stores.ledger import Ledger
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
    # Registered: the MLflow runs are finished, not RUNNING forever.
    assert {client.get_run(r.mlflow_run_id).info.status for r in (first, second)} == {"FINISHED"}

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
    assert {"evaluation/champion_confusion_matrix.png", "evaluation/evaluation.png"} <= artifacts
    # Every golden metric carries its interval on the version, and calibration is measured.
    assert re.fullmatch(r"\d\.\d{3} \(\d\.\d{3}–\d\.\d{3}, n=30\)", tags["bertloop.golden.accuracy"])
    assert {"golden_ece", "champion_golden_ece", "macro_f1_difference_lower", "golden_accuracy_lower"} <= set(
        metrics
    )
    trained = json.loads((platform_config.workspace / "runs" / "second" / "train.json").read_text())
    assert float(tags["bertloop.golden.temperature"]) == pytest.approx(trained["temperature"], abs=1e-4)
    # The champion judged the second batch's labels before it was trained on; the first had no champion.
    first_check = json.loads((platform_config.workspace / "runs" / "first" / "validate.json").read_text())
    second_check = json.loads((platform_config.workspace / "runs" / "second" / "validate.json").read_text())
    assert first_check["label_noise"] is None
    assert second_check["label_noise"].startswith("the champion confidently disagrees with ")
    # Registered: the run's checkpoints are gone, its model stays.
    run_folder = platform_config.workspace / "runs" / "second"
    assert not (run_folder / "checkpoints").exists() and (run_folder / "model" / "config.json").is_file()
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
        f"accuracy {verdict['intervals']['accuracy']} is below the minimum 1.0100"
    ]
    assert verdict["intervals"]["accuracy"].endswith(", n=30)")
    client = _client(config)
    assert client.get_registered_model(config.registry.model_name).aliases == {}
    # `bertloop models` shows each golden metric with its interval, as the evaluation stated it.
    from registry.summary import format_table, registry_rows

    (row,) = registry_rows(config)
    assert (row["golden_accuracy"], row["golden_macro_f1"]) == (
        verdict["intervals"]["accuracy"], verdict["intervals"]["macro_f1"],
    )  # fmt: skip
    assert re.search(r"\d\.\d{3} \(\d\.\d{3}–\d\.\d{3}, n=30\)", format_table([row]))


def test_steps_out_of_order_say_what_to_run(platform_config: PlatformConfig) -> None:
    with pytest.raises(StepNotRun, match=r"run `bertloop ingest --run-key nope` first"):
        steps.validate(platform_config, "nope")


def test_a_worse_blessed_model_does_not_displace_the_waiting_challenger(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame, tmp_path: Path
) -> None:
    from bertloop.core.stores.ledger import Ledger

    (tmp_path / "incoming").mkdir()
    for seed in (1, 2):
        batch = tmp_path / "incoming" / f"batch-{seed}.csv"
        synthetic_rows(12, seed=seed, exclude=set(golden_frame["text"])).to_csv(batch, index=False)
        steps.run_all(platform_config, f"run-{seed}", str(batch))
    client = _client(platform_config)
    name = platform_config.registry.model_name
    waiting_run = client.get_model_version(name, "2").run_id
    client.log_metric(waiting_run, "golden_macro_f1", 2.0)  # the waiting challenger: better than anything
    batch = tmp_path / "incoming" / "batch-3.csv"
    synthetic_rows(12, seed=3, exclude=set(golden_frame["text"])).to_csv(batch, index=False)
    third = steps.run_all(platform_config, "run-3", str(batch))

    assert third.decision == constants.DECISION_BLESSED and third.aliases == []
    assert client.get_registered_model(name).aliases["challenger"] == 2
    kept = Ledger(platform_config.ledger_url).entries(name)[-1]
    assert kept.action == "challenger_kept" and kept.evidence["candidate"] == "3"
    assert "stays below challenger v2 (2.0000) on the same golden set" in kept.evidence["summary"]

    client.log_metric(waiting_run, "golden_macro_f1", -1.0)  # now the waiting one is worse: v3 replaces it
    (platform_config.workspace / "runs" / "run-3" / "register.json").unlink()
    again = steps.register(platform_config, "run-3")
    assert again.aliases == ["challenger"] and not again.newly_registered
    assert client.get_registered_model(name).aliases["challenger"] == 3
    moved = Ledger(platform_config.ledger_url).entries(name)[-1]
    assert (moved.action, moved.from_version, moved.to_version) == ("register", "2", "3")


def test_a_batch_whose_model_was_not_blessed_stays_out_until_readmitted(
    config_file: Path, golden_frame: pd.DataFrame, tmp_path: Path
) -> None:
    from bertloop.pipeline.cli import EXIT_USAGE, main

    config = load_config(config_file, environ={})
    strict = load_config(config_file, overrides={"gate.minimums": {"accuracy": 1.01}}, environ={})
    (tmp_path / "incoming").mkdir()
    paths = []
    for seed in (1, 2, 3):
        paths.append(tmp_path / "incoming" / f"batch-{seed}.csv")
        synthetic_rows(12, seed=seed, exclude=set(golden_frame["text"])).to_csv(paths[-1], index=False)
    steps.run_all(config, "good", str(paths[0]))
    rejected = steps.run_all(strict, "doubtful", str(paths[1]))  # trained, registered, not blessed
    doubtful = steps.ingest(config, "doubtful").batch_id
    assert rejected.decision == constants.DECISION_NOT_BLESSED

    steps.ingest(config, "next", str(paths[2]))
    steps.validate(config, "next")
    later = steps.version(config, "next")
    assert later.suspect_batches_left_out == [doubtful]
    assert not any(Path(path).stem == doubtful for path in later.training_files)

    assert (
        main(["--config", str(config_file), "readmit", "no-such-batch", "--reason", "checked"]) == EXIT_USAGE
    )
    assert main(["--config", str(config_file), "readmit", doubtful, "--reason", "labels re-checked"]) == 0
    steps.ingest(config, "after", str(tmp_path / "incoming" / "batch-3.csv"))
    steps.validate(config, "after")
    readmitted = steps.version(config, "after")
    assert readmitted.suspect_batches_left_out == []
    assert any(Path(path).stem == doubtful for path in readmitted.training_files)
    actions = [entry.action for entry in Ledger(config.ledger_url).entries(config.registry.model_name)]
    assert actions.count("batch_suspect") == 1 and actions[-1] == "batch_readmitted"


def test_a_batch_the_champion_confidently_contradicts_is_held_as_label_noise(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame, good_batch: Path
) -> None:
    # A champion that has learnt the tiny topics (and is sure of it), so its disagreement means something.
    learnt = {"training.epochs": 40, "training.learning_rate": 0.01, "training.patience": 100,
              "training.temperature_scaling": False}  # fmt: skip
    config = load_config(write_config(tmp_path, tiny_checkpoint, golden_frame, **learnt), environ={})
    steps.run_all(config, "champion", str(good_batch))
    fresh = synthetic_rows(12, seed=3, exclude=set(golden_frame["text"]))
    clean, rotated = tmp_path / "incoming" / "clean.csv", tmp_path / "incoming" / "rotated.csv"
    fresh.to_csv(clean, index=False)
    # Every label moved one class on, as a mis-mapped export does: the schema checks all pass.
    shift = {"sport": "tech", "tech": "politics", "politics": "sport"}
    fresh.assign(label=fresh["label"].map(shift)).to_csv(rotated, index=False)
    original = rotated.read_bytes()

    steps.ingest(config, "clean", str(clean))
    assert not steps.validate(config, "clean").label_noise.startswith("probable label noise")
    steps.ingest(config, "rotated", str(rotated))
    with pytest.raises(steps.BatchRejected, match="probable label noise") as held:
        steps.validate(config, "rotated")
    (problem,) = held.value.failures
    examples = re.findall(r"row \d+: labelled '(\w+)', the champion says '(\w+)'", problem)
    assert examples and all(shift[said] == given for given, said in examples)  # the rows, with evidence
    assert (held.value.folder / rotated.name).read_bytes() == original  # held byte for byte
    with pytest.raises(StepNotRun):
        steps.version(config, "rotated")  # never versioned, never trained on


def test_a_failed_run_is_marked_failed_and_a_retry_resumes_it(
    platform_config: PlatformConfig, good_batch: Path
) -> None:
    from registry.mlflow_registry import find_or_create_run

    steps.ingest(platform_config, "flaky", str(good_batch))
    steps.validate(platform_config, "flaky")
    steps.version(platform_config, "flaky")
    trained = steps.train(platform_config, "flaky")
    # The recipe as used, the learning curve and why training ended are on the MLflow run.
    run = _client(platform_config).get_run(trained.mlflow_run_id)
    assert run.data.params["recipe.batch_size"] == "8" and "recipe.head_learning_rate" in run.data.params
    assert trained.stop_note and run.data.tags[constants.TAG_TRAINING_STOP] == trained.stop_note
    assert run.data.params["recipe.validation_every"] == "epoch"  # 4 steps an epoch: scored at its end
    assert "validation scored once an epoch" in run.data.tags[constants.TAG_TRAINING_RECIPE]
    assert run.data.params[constants.PARAM_UNVALIDATED_CLASSES] == "none"  # every class gave 2 rows
    assert run.data.metrics["epochs_run"] == trained.epochs_run == 1
    curve = _client(platform_config).get_metric_history(trained.mlflow_run_id, "validation_macro_f1")
    assert [point.step for point in curve] == [step for _, step, _ in trained.learning_curve]
    golden = platform_config.data.golden_set
    hidden = golden.with_name("golden.hidden")
    golden.rename(hidden)  # evaluation cannot read the golden set: the run fails
    try:
        with pytest.raises(Exception, match="golden set"):
            steps.run_all(platform_config, "flaky", str(good_batch))
    finally:
        hidden.rename(golden)
    client = _client(platform_config)
    assert client.get_run(trained.mlflow_run_id).info.status == "FAILED"
    experiment = client.get_experiment_by_name(platform_config.registry.experiment).experiment_id
    assert find_or_create_run(client, experiment, "flaky", {}) == trained.mlflow_run_id  # resumed...
    assert client.get_run(trained.mlflow_run_id).info.status == "RUNNING"  # ...and running again
    registered = steps.run_all(platform_config, "flaky", str(good_batch))
    assert client.get_run(registered.mlflow_run_id).info.status == "FINISHED"
