"""The one way to train: :func:`train` runs a :class:`TrainingJob` in this process or under torchrun.

With ``training.processes_per_node * training.nodes == 1`` the job runs here.
Above that, :func:`train` writes the job to a file and launches
``torchrun -m training.entry JOB``; each process trains on its shard through
Trainer's DistributedDataParallel, rank 0 saves the model, appends its metrics
to a file that this process forwards to ``report`` as they arrive, and writes
the outcome. Both paths call the same :func:`training.finetune.fine_tune`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from bertloop.core.config import TrainingConfig
from bertloop.core.workspace import write_json_atomic
from training.callbacks import JsonLinesReporter, MetricsReporter, ReportMetrics
from training.finetune import TrainOutcome, fine_tune

TEXT, LABEL = "text", "label"  # columns of the job's data file


@dataclass(frozen=True)
class TrainingJob:
    """Everything a training process needs, as files and settings (it travels to torchrun as JSON)."""

    data_file: Path  # Parquet with columns text and label: the training snapshot
    label_names: list[str]
    base_checkpoint: Path
    checkpoint_dir: Path
    model_dir: Path
    settings: TrainingConfig

    def to_json(self) -> dict[str, object]:
        fields = {
            key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()
        }
        return {**fields, "settings": self.settings.model_dump(mode="json")}

    @classmethod
    def from_json(cls, payload: dict[str, object]) -> TrainingJob:
        return cls(
            data_file=Path(str(payload["data_file"])),
            label_names=[str(name) for name in payload["label_names"]],  # type: ignore[attr-defined]
            base_checkpoint=Path(str(payload["base_checkpoint"])),
            checkpoint_dir=Path(str(payload["checkpoint_dir"])),
            model_dir=Path(str(payload["model_dir"])),
            settings=TrainingConfig.model_validate(payload["settings"]),
        )


def write_training_data(frame: pd.DataFrame, text_column: str, label_column: str, path: Path) -> Path:
    """The snapshot as the job's data file, under the columns the job reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[[text_column, label_column]].rename(columns={text_column: TEXT, label_column: LABEL}).to_parquet(
        path, index=False
    )
    return path


def train(job: TrainingJob, report: MetricsReporter | None = None) -> TrainOutcome:
    """Train ``job`` with as many processes as its settings ask for; metrics go to ``report``."""
    if job.settings.world_size == 1:
        return _fine_tune(job, report)
    return _launch(job, report)


def _fine_tune(job: TrainingJob, report: MetricsReporter | None) -> TrainOutcome:
    frame = pd.read_parquet(job.data_file)
    return fine_tune(
        texts=frame[TEXT].tolist(),
        labels=frame[LABEL].tolist(),
        label_names=job.label_names,
        base_checkpoint=job.base_checkpoint,
        checkpoint_dir=job.checkpoint_dir,
        model_dir=job.model_dir,
        settings=job.settings,
        callbacks=[ReportMetrics(report)] if report else [],
    )


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
    return [*command, "-m", "training.entry", str(job_file)]


def _launch(job: TrainingJob, report: MetricsReporter | None) -> TrainOutcome:
    work = job.checkpoint_dir.parent
    job_file, outcome_file, metrics_file = (
        work / "distributed-job.json",
        work / "distributed-outcome.json",
        work / "distributed-metrics.jsonl",
    )
    for stale in (outcome_file, metrics_file):
        stale.unlink(missing_ok=True)
    write_json_atomic(job_file, {"job": job.to_json(), "outcome_file": str(outcome_file),
                                 "metrics_file": str(metrics_file)})  # fmt: skip
    process = subprocess.Popen(torchrun_command(job.settings, job_file))
    forwarded = 0
    while process.poll() is None:
        forwarded = _forward(metrics_file, forwarded, report)
        time.sleep(1)
    _forward(metrics_file, forwarded, report)
    if process.returncode != 0 or not outcome_file.is_file():
        raise RuntimeError(
            f"distributed training exited with code {process.returncode}; "
            "the checkpoints so far are kept and a retry resumes from the last one"
        )
    return TrainOutcome(**json.loads(outcome_file.read_text(encoding="utf-8")))


def _forward(metrics_file: Path, already: int, report: MetricsReporter | None) -> int:
    """Pass on the complete lines rank 0 has written since the last call; returns the lines seen."""
    if not metrics_file.is_file():
        return already
    lines = metrics_file.read_text(encoding="utf-8").splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    for line in complete[already:]:
        if report is not None:
            entry = json.loads(line)
            report(entry["metrics"], entry["step"])
    return len(complete)


def _worker(job_file: Path) -> None:
    """One torchrun process: train its shard; rank 0 reports metrics and writes the outcome."""
    payload = json.loads(job_file.read_text(encoding="utf-8"))
    rank_zero = int(os.environ.get("RANK", "0")) == 0
    job = TrainingJob.from_json(payload["job"])
    outcome = _fine_tune(job, JsonLinesReporter(Path(payload["metrics_file"])) if rank_zero else None)
    if rank_zero:
        write_json_atomic(Path(payload["outcome_file"]), asdict(outcome))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
