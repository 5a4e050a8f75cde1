"""Airflow UI plugin: a navigation link from Airflow to the MLflow model registry.

Users meet the platform in both UIs; this puts the registry one click away from
the DAG runs that fill it. The address comes from ``BERTLOOP_MLFLOW_UI_URL``
(default: the ``mlflow ui`` that the demo prints, on port 5000).
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin

MLFLOW_UI_URL = os.environ.get("BERTLOOP_MLFLOW_UI_URL", "http://localhost:5000").rstrip("/")
MODEL_NAME = os.environ.get("BERTLOOP_REGISTRY__MODEL_NAME", "bertloop-text-classifier")


class BertloopLinksPlugin(AirflowPlugin):
    name = "bertloop_links"
    external_views = [  # noqa: RUF012 (the AirflowPlugin interface is a class attribute)
        {
            "name": "MLflow model registry",
            "href": f"{MLFLOW_UI_URL}/#/models/{MODEL_NAME}",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "MLflow experiments",
            "href": f"{MLFLOW_UI_URL}/#/experiments",
            "destination": "nav",
            "category": "browse",
        },
    ]
