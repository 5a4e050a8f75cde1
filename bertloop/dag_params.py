"""Trigger-form fields that every bertloop DAG offers, declared once.

Only DAG files import this module: it is the one place outside ``dags/`` that
needs Airflow, and it holds no logic.
"""

from __future__ import annotations

from airflow.sdk import Param


def config_path_param() -> Param:
    return Param(
        "",
        type="string",
        title="Configuration file",
        description="YAML configuration. Empty: $BERTLOOP_CONFIG.",
    )


def overrides_param() -> Param:
    return Param(
        {},
        type="object",
        title="Other settings",
        description='Dotted settings, e.g. {"gate.minimums": {"macro_f1": 0.8}}.',
    )
