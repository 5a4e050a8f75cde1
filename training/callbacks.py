"""Trainer callbacks that hand training metrics to whoever asked for them, without knowing who that is."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from bertloop.core.faults import crash_point
from training.stopping import VALIDATION_PREFIX

# (metrics, global step) -> None: the pipeline passes one that logs to its MLflow run.
MetricsReporter = Callable[[dict[str, float], int], None]


def numeric_logs(logs: dict[str, Any]) -> dict[str, float]:
    """Trainer's log entry as numbers (booleans and strings dropped): the validation split's scores
    as ``validation_*`` (the learning curve), everything else as ``train_*``."""
    return {_metric_name(key): float(value) for key, value in logs.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}  # fmt: skip


def _metric_name(key: str) -> str:
    if key.startswith("eval_"):
        return VALIDATION_PREFIX + key.removeprefix("eval_")
    return key if key.startswith("train_") else f"train_{key}"


class ReportMetrics(TrainerCallback):
    """Passes every numeric log entry of the main process to ``report`` at the current global step."""

    def __init__(self, report: MetricsReporter):
        self.report = report

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if numeric := numeric_logs(logs):
            self.report(numeric, int(state.global_step))


class JsonLinesReporter:
    """A reporter for a torchrun worker: appends each report to a file the launching process reads."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "metrics": metrics}) + "\n")


COMPLETE_MARKER = "bertloop-checkpoint-complete"


class MarkCompleteCheckpoints(TrainerCallback):
    """Marks a checkpoint folder complete once Trainer has written every file of it.

    Trainer writes ``checkpoint-<step>`` file by file; a kill in the middle leaves a
    folder that looks like a checkpoint and cannot be resumed from. ``on_save`` runs
    after the whole checkpoint is written, so only marked folders are resumed from.
    """

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        crash_point("train:checkpoint-written")
        if folder.is_dir():
            marker = folder / COMPLETE_MARKER
            partial = marker.with_suffix(".tmp")
            partial.write_text(json.dumps({"global_step": state.global_step}), encoding="utf-8")
            partial.replace(marker)
