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


# Every optional field is nullable, so the form submits it empty and the configuration decides.


def config_path_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        title="Configuration file",
        description="Path of a YAML configuration on the workers. Leave empty to use $BERTLOOP_CONFIG.",
    )


def overrides_param() -> Param:
    return Param(
        None,
        type=["null", "object"],
        title="Other settings",
        description='Any other setting, dotted, as JSON: {"gate.minimums": {"macro_f1": 0.8}}. '
        "Leave empty to change nothing.",
    )


def optional_number(title: str, description: str, integer: bool = False, **bounds: float) -> Param:
    """A number the form may leave empty: the configuration's value is used then."""
    kind = "integer" if integer else "number"
    return Param(None, type=["null", kind], title=title, description=description, **bounds)
