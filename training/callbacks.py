"""Streams Trainer logs into one MLflow run while training goes."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class MlflowMetricsCallback(TrainerCallback):
    """Logs every numeric Trainer log entry to ``run_id`` at the current global step.

    Used instead of transformers' own MLflow integration so the metrics land in
    the platform's run (found again on retries), not in a run the callback starts.
    """

    def __init__(self, client: Any, run_id: str):
        self.client = client
        self.run_id = run_id

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        from registry.mlflow_registry import log_metrics

        numeric = {
            f"train_{key}" if not key.startswith("train_") else key: float(value)
            for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if numeric:
            log_metrics(self.client, self.run_id, numeric, step=state.global_step)
