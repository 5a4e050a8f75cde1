"""Environment defaults for the libraries the platform drives, set in one place.

MLflow telemetry is off only with ``MLFLOW_DISABLE_TELEMETRY=true``; Great
Expectations and DVC send analytics unless told not to; the Hugging Face Hub is
never reached (models load from local folders). Entry points (the command line,
the Airflow task bodies, the gateway, the demo and the tests) call
:func:`apply_env_defaults` once; a value the user set is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_env_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    target = os.environ if environ is None else environ
    for name, value in DEFAULTS.items():
        target.setdefault(name, value)
