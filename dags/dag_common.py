"""What the bertloop DAGs share, declared once: the Assets that connect them and common trigger-form fields.

Not a DAG file (``.airflowignore`` keeps the DAG processor from parsing it as one);
the DAG files import it from the DAGs folder, which Airflow puts on ``sys.path``.
It holds no logic: task bodies call ``bertloop.pipeline.orchestration``.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param

from bertloop.core.constants import (
    CHALLENGER_ASSET_NAME,
    CHALLENGER_ASSET_URI,
    DRIFT_ASSET_NAME,
    DRIFT_ASSET_URI,
)

# retrain -> canary: a blessed challenger was registered.
challenger_registered = Asset(name=CHALLENGER_ASSET_NAME, uri=CHALLENGER_ASSET_URI)
# monitor_drift -> retrain: drift was confirmed and storm control allows a retrain; extra holds the batch.
drift_confirmed = Asset(name=DRIFT_ASSET_NAME, uri=DRIFT_ASSET_URI)


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
