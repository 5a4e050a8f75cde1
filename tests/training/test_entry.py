"""Data-parallel training with torchrun: two CPU processes (gloo) against one.

With full-batch steps and no dropout, DDP's averaged gradient over two equal
shards equals the single process's gradient over the whole batch, so both
runs must reach the same weights; the tolerance allows float reduction order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bertloop.core.config import load_config
from tests.conftest import build_tiny_bert, synthetic_rows, write_config

TOLERANCE = 1e-4  # largest allowed absolute difference of any weight after training


@pytest.fixture
def deterministic_bert(tmp_path: Path) -> Path:
    return build_tiny_bert(tmp_path / "bert-no-dropout", dropout=0.0)


def _train(tmp_path: Path, checkpoint: Path, golden: pd.DataFrame, name: str, processes: int):
    from training.entry import TrainingJob, train, write_training_data

    rows = synthetic_rows(9, seed=5)  # 27 rows: 3 held out to fit the temperature, 24 trained on
    settings = {
        "training.processes_per_node": processes,
        "training.batch_size": 24 // processes,  # one full batch per step in both runs
        "training.epochs": 3,
        "training.learning_rate": 0.01,
        "training.warmup_ratio": 0.0,
        "training.weight_decay": 0.0,
        "training.head_learning_rate_multiplier": 1.0,
        "training.patience": 0,  # every step trained and the last weights kept: the runs compare whole
        "training.validation_min_per_class": 1,  # one row a class: 24 left, one full batch
        # Under bf16 autocast (a CPU with avx512_bf16 or AMX) one process and two round differently:
        # the weights differed by 1.5e-2 there. What is compared is DDP's arithmetic, so fp32.
        "training.precision": "fp32",
    }
    config = load_config(write_config(tmp_path / name, checkpoint, golden, **settings), environ={})
    run_dir = tmp_path / name / "run"
    job = TrainingJob(
        data_file=write_training_data(rows, "text", "label", run_dir / "data.parquet"),
        label_names=config.data.labels,
        base_checkpoint=checkpoint,
        checkpoint_dir=run_dir / "checkpoints",
        model_dir=run_dir / "model",
        settings=config.training,
    )
    reported: list[tuple[dict[str, float], int]] = []
    outcome = train(job, report=lambda metrics, step: reported.append((metrics, step)))
    return outcome, reported


@pytest.mark.processes
def test_two_gloo_processes_match_one_process(
    tmp_path: Path, deterministic_bert: Path, golden_frame: pd.DataFrame
) -> None:
    from safetensors.torch import load_file

    (tmp_path / "single").mkdir()
    (tmp_path / "ddp").mkdir()
    single, single_reports = _train(tmp_path, deterministic_bert, golden_frame, "single", processes=1)
    parallel, parallel_reports = _train(tmp_path, deterministic_bert, golden_frame, "ddp", processes=2)
    # Rank 0's metrics reach the caller's reporter through the launching process, step by step.
    assert [step for _, step in parallel_reports] == [step for _, step in single_reports]
    assert any("train_loss" in metrics for metrics, _ in parallel_reports)
    assert single.global_step == parallel.global_step == 3
    # Both fit the temperature on the same 3 held-out rows (under DDP, predictions are gathered).
    assert single.validation_examples == parallel.validation_examples == 3
    assert single.temperature is not None and parallel.temperature is not None
    assert abs(single.temperature - parallel.temperature) < 1e-2
    # Trainer reports rank 0's own shard loss, so the weights are what is compared.
    one = load_file(Path(single.model_dir) / "model.safetensors")
    two = load_file(Path(parallel.model_dir) / "model.safetensors")
    assert one.keys() == two.keys()
    worst = max(float((one[key] - two[key]).abs().max()) for key in one)
    print(f"largest weight difference, 2 gloo processes vs 1: {worst:.2e}")
    assert worst < TOLERANCE, f"weights differ by up to {worst}"
    # And training moved the weights at all, so the comparison means something.
    start = load_file(deterministic_bert / "model.safetensors")
    moved = max(
        float((one[key] - start[key]).abs().max())
        for key in start
        if key in one and one[key].shape == start[key].shape
    )
    assert moved > 100 * TOLERANCE


def test_torchrun_command_for_one_and_many_nodes() -> None:
    from bertloop.core.config import TrainingConfig
    from training.entry import torchrun_command

    local = torchrun_command(TrainingConfig(processes_per_node=4), Path("job.json"))
    assert "--nproc-per-node=4" in local and "--standalone" in local
    cluster = torchrun_command(
        TrainingConfig(processes_per_node=8, nodes=2, rendezvous_endpoint="head:29400"), Path("job.json")
    )
    assert (
        "--nnodes=2" in cluster and "--rdzv-endpoint=head:29400" in cluster and "--standalone" not in cluster
    )
    assert cluster[-3:] == ["-m", "training.entry", "job.json"]


def test_multi_node_without_rendezvous_is_refused() -> None:
    from bertloop.core.config import TrainingConfig

    with pytest.raises(ValueError, match="nodes > 1 needs rendezvous_endpoint"):
        TrainingConfig(nodes=2)


@pytest.mark.processes
def test_train_step_runs_ddp_when_configured(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame, good_batch: Path
) -> None:
    from bertloop.pipeline import steps
    from registry.mlflow_registry import connect

    config = load_config(
        write_config(tmp_path, tiny_checkpoint, golden_frame, **{"training.processes_per_node": 2}),
        environ={},
    )
    steps.ingest(config, "ddp", str(good_batch))
    steps.validate(config, "ddp")
    steps.version(config, "ddp")
    trained = steps.train(config, "ddp")
    # 36 rows: 6 held out (2 a class) for validation, 30 trained on in steps of 2 x 8.
    assert trained.train_examples + trained.validation_examples == 36 and trained.validation_examples == 6
    assert trained.global_step == 2
    assert (Path(trained.model_dir) / "model.safetensors").is_file()
    history = connect(config).get_metric_history(trained.mlflow_run_id, "train_loss")
    assert history, "rank 0 streamed its metrics into the parent's MLflow run"
