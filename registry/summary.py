"""A readable table of the registered model's versions: aliases, metrics and decisions."""

from __future__ import annotations

from typing import Any

from bertloop.core import constants
from bertloop.core.config import PlatformConfig

COLUMNS = ("version", "aliases", "golden_accuracy", "golden_macro_f1", "decision", "batch", "airflow_run")


def registry_rows(config: PlatformConfig) -> list[dict[str, str]]:
    from mlflow.exceptions import MlflowException

    from registry.mlflow_registry import connect

    client = connect(config)
    name = config.registry.model_name
    try:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
    except MlflowException:
        return []
    rows = []
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    for version in versions:
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        tags = version.tags
        rows.append(
            {
                "version": str(version.version),
                "aliases": ",".join(sorted(aliases_by_version.get(str(version.version), []))) or "-",
                "golden_accuracy": _metric(tags, metrics, constants.METRIC_ACCURACY),
                "golden_macro_f1": _metric(tags, metrics, constants.METRIC_MACRO_F1),
                "decision": tags.get(constants.TAG_DECISION, "-"),
                "batch": tags.get("bertloop.batch_id", "-"),
                "airflow_run": tags.get(constants.TAG_AIRFLOW_RUN_ID, "-"),
                "reasons": tags.get(constants.TAG_DECISION_REASONS, ""),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    if not rows:
        return "(no registered versions yet)"
    widths = {column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns}
    line = "  ".join(column.ljust(widths[column]) for column in columns)
    rule = "  ".join("-" * widths[column] for column in columns)
    body = ["  ".join(str(row[column]).ljust(widths[column]) for column in columns) for row in rows]
    return "\n".join([line, rule, *body])


def _metric(tags: dict[str, str], metrics: dict[str, float], name: str) -> str:
    """With its interval where the evaluation recorded one ("0.925 (0.890–0.960, n=200)")."""
    described = tags.get(f"{constants.TAG_GOLDEN_PREFIX}{name}")
    return described or _number(metrics.get(f"{constants.GOLDEN_PREFIX}{name}"))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
