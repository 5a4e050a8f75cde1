"""Data-parallel fine-tuning: the train step launches torchrun, each process runs this module.

The parent (the Airflow task or the CLI) keeps the bookkeeping: it owns the
MLflow run, the manifests and the retries. It writes a job file, runs
``torchrun -m training.distributed JOB``, and reads back the outcome that rank 0
writes. Each process trains on its shard through Trainer's DistributedDataParallel;
rank 0 alone logs metrics and saves the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bertloop.config import PlatformConfig, TrainingConfig
from bertloop.workspace import write_json_atomic
from training.finetune import TrainOutcome


def torchrun_command(settings: TrainingConfig, job_file: Path) -> list[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc-per-node={settings.processes_per_node}",
        f"--nnodes={settings.nodes}",
    ]  # fmt: skip
    if settings.nodes > 1:
        command += ["--rdzv-backend=c10d", f"--rdzv-endpoint={settings.rendezvous_endpoint}"]
    else:
        command += ["--standalone"]
    return [*command, "-m", "training.distributed", str(job_file)]


def launch(
    config: PlatformConfig,
    training_files: list[Path],
    base_checkpoint: Path,
    run_dir: Path,
    tracking: dict[str, str] | None,
    newest: Path | None = None,
) -> TrainOutcome:
    """Run data-parallel training in child processes and return rank 0's outcome."""
    job_file = run_dir / "distributed-job.json"
    outcome_file = run_dir / "distributed-outcome.json"
    outcome_file.unlink(missing_ok=True)
    write_json_atomic(
        job_file,
        {
            "config": config.model_dump(mode="json"),
            "training_files": [str(path) for path in training_files],
            "newest": str(newest) if newest else None,
            "base_checkpoint": str(base_checkpoint),
            "run_dir": str(run_dir),
            "outcome_file": str(outcome_file),
            "tracking": tracking,
        },
    )
    completed = subprocess.run(torchrun_command(config.training, job_file), check=False)
    if completed.returncode != 0 or not outcome_file.is_file():
        raise RuntimeError(
            f"distributed training exited with code {completed.returncode}; "
            "the checkpoints so far are kept and a retry resumes from the last one"
        )
    return TrainOutcome(**json.loads(outcome_file.read_text(encoding="utf-8")))


def _run_job(job: dict[str, Any]) -> None:
    from bertloop.data import load_training_frame
    from training.finetune import fine_tune

    config = PlatformConfig.model_validate(job["config"])
    newest = Path(job["newest"]) if job.get("newest") else None
    frame = load_training_frame(config, [Path(path) for path in job["training_files"]], newest)
    callbacks = []
    if job["tracking"] and int(os.environ.get("RANK", "0")) == 0:
        from registry.mlflow_registry import connect
        from training.callbacks import MlflowMetricsCallback

        callbacks.append(MlflowMetricsCallback(connect(config), job["tracking"]["run_id"]))
    run_dir = Path(job["run_dir"])
    outcome = fine_tune(
        texts=frame[config.data.text_column].tolist(),
        labels=frame[config.data.label_column].tolist(),
        label_names=config.data.labels,
        base_checkpoint=Path(job["base_checkpoint"]),
        checkpoint_dir=run_dir / "checkpoints",
        model_dir=run_dir / "model",
        settings=config.training,
        callbacks=callbacks,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        write_json_atomic(Path(job["outcome_file"]), outcome.to_dict())


if __name__ == "__main__":
    _run_job(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
