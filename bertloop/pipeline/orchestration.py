"""What each Airflow task of every bertloop DAG does, kept out of the DAG files.

A task builds the run's configuration from the trigger form's Params, calls one
function of the pipeline or a stage, and translates the outcome into Airflow's
terms: bad input (a rejected batch, an invalid setting, an unusable golden set)
fails the task at once with no retries, an empty landing folder or nothing to
roll out skips it, and anything else is left to Airflow's retries. What a task
returns goes to XCom as plain JSON. DAG files import this module inside their
task bodies, so parsing a DAG imports none of it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import httpx
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bertloop.core import constants
from bertloop.core.config import ConfigError, PlatformConfig, load_config
from bertloop.core.env import apply_env_defaults
from bertloop.pipeline import airflow_api, steps
from drift.check import run_check
from intake.datasets import GoldenSetInvalid
from rollout.controller import NothingToRollOut, restore_previous_champion, run_canary

log = logging.getLogger(__name__)

# Trigger-form fields that map one-to-one onto configuration settings.
PARAM_SETTINGS = {
    "epochs": "training.epochs",
    "learning_rate": "training.learning_rate",
    "max_steps": "training.max_steps",
    "batch_size": "training.batch_size",
    "patience": "training.patience",
    "validation_every": "training.validation_every",
    "train_on": "training.train_on",
}
PERMANENT_ERRORS = (steps.BatchRejected, ConfigError, GoldenSetInvalid, FileNotFoundError)


def worker_hostname() -> str:
    """Airflow's ``hostname_callable``: names the worker that ran a task instance.

    Workers on one machine share its host name; ``BERTLOOP_WORKER_HOSTNAME`` tells
    them apart, so a task instance shows whether the GPU worker or a CPU worker ran it.
    """
    return os.environ.get("BERTLOOP_WORKER_HOSTNAME") or socket.getfqdn()


CANARY_PARAM_SETTINGS = {
    "steps": "canary.steps",
    "bake_seconds": "canary.bake_seconds",
    "min_requests_per_step": "canary.min_requests_per_step",
}


def config_from_params(
    params: Mapping[str, Any], settings: Mapping[str, str] = PARAM_SETTINGS
) -> PlatformConfig:
    """The configuration file plus the trigger form: typed fields first, then free overrides."""
    apply_env_defaults()
    overrides: dict[str, Any] = {
        setting: params[field]
        for field, setting in settings.items()
        if params.get(field) not in (None, constants.TRAIN_ON_CONFIGURED)
    }
    extra = params.get("overrides") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError("the 'overrides' parameter must be an object of setting -> value")
    overrides.update(extra)
    return load_config(params.get("config_path") or None, overrides=overrides)


def set_run_note(context: Mapping[str, Any], note: str) -> bool:
    """Write ``note`` on this DAG run through Airflow's REST API, so the grid says why at a glance.

    Tasks have no API of their own for run notes, so this needs ``BERTLOOP_AIRFLOW_API_URL`` and, where
    Airflow asks for a login, the user the stack configures (``bertloop.pipeline.airflow_api``). Without
    them, or if the API refuses, the task's own state and log still say what happened; the note is a
    convenience and its failure fails nothing.
    """
    base = os.environ.get(airflow_api.ENV_URL)
    if not base:
        return False
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    try:
        login = airflow_api.login_from_environment()
        response = airflow_api.patch_run_note(base, login, dag_id, run_id, note)
    except (httpx.HTTPError, airflow_api.AirflowLoginError) as error:
        log.warning("could not write the run note (%s): %s", error, note)
        return False
    if response.status_code != 200:
        log.warning(
            "Airflow refused the run note (%s %s): %s", response.status_code, response.text[:200], note
        )
    return response.status_code == 200


def run_step(step: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Run one step for the DAG run in ``context``; the run id is the run key."""
    params, run_id = context["params"], context["run_id"]
    try:
        config = config_from_params(params)
        if step == constants.STEP_INGEST:
            source = params.get("data_path") or drift_data_path(context)
            return steps.ingest(config, run_id, source, airflow_run_id=run_id).model_dump(mode="json")
        return getattr(steps, step)(config, run_id).model_dump(mode="json")
    except steps.NoBatchWaiting as error:
        set_run_note(context, f"Nothing to train on: {error}")
        raise AirflowSkipException(str(error)) from error
    except steps.BatchRejected as error:
        set_run_note(context, f"Batch rejected, nothing trained. {error}")
        raise AirflowFailException(str(error)) from error
    except PERMANENT_ERRORS as error:
        # Retrying cannot fix bad input; fail now with the message that says what to fix.
        raise AirflowFailException(str(error)) from error


def announce_challenger(
    registration: Mapping[str, Any], context: Mapping[str, Any], asset: Any
) -> dict[str, Any]:
    """Emit the challenger asset (which schedules the canary) only when a challenger was registered."""
    if constants.CHALLENGER_ALIAS not in registration.get("aliases", []):
        # A skipped task emits no asset event: no canary for a champion-first or unblessed model.
        raise AirflowSkipException(
            f"version {registration.get('version')} is not a new challenger ({registration.get('aliases')})"
        )
    event = {key: registration[key] for key in ("model_name", "version", "mlflow_run_id")}
    context["outlet_events"][asset].extra = event
    return event


def run_canary_step(context: Mapping[str, Any]) -> dict[str, Any]:
    """Roll the challenger out; a rollback fails the task, so the run shows red with the reasons."""
    try:
        config = config_from_params(context["params"], CANARY_PARAM_SETTINGS)
        outcome = run_canary(config, actor=f"airflow:canary:{context['run_id']}")
    except NothingToRollOut as error:
        set_run_note(context, f"Nothing to roll out: {error}")
        raise AirflowSkipException(str(error)) from error
    except PERMANENT_ERRORS as error:
        raise AirflowFailException(str(error)) from error
    if outcome["outcome"] == "rolled_back":
        reasons = "; ".join(outcome["reasons"])
        set_run_note(context, f"Rolled back v{outcome['challenger']}: {reasons}")
        raise AirflowFailException(f"canary rolled back: v{outcome['challenger']} failed a step: {reasons}")
    promoted, previous = outcome["champion"], outcome["previous_champion"]
    set_run_note(
        context, f"Promoted v{promoted} (previous champion v{previous}) after {len(outcome['steps'])} steps"
    )
    return outcome


def run_rollback(context: Mapping[str, Any]) -> dict[str, Any]:
    dag_run = context["dag_run"]
    who = getattr(dag_run, "triggering_user_name", None) or "unknown user"
    try:
        config = config_from_params(context["params"], {})
        return restore_previous_champion(
            config, actor=f"airflow:rollback:{context['run_id']} by {who}", reason=context["params"]["reason"]
        )
    except (NothingToRollOut, ValueError, *PERMANENT_ERRORS) as error:
        raise AirflowFailException(str(error)) from error


def mark_run_failed(context: Mapping[str, Any]) -> None:
    """on_failure_callback of the retrain DAG's tasks: the MLflow run is FAILED, not RUNNING forever."""
    from bertloop.pipeline.steps import mark_run_failed as mark

    try:
        config = config_from_params(context["params"], {})
    except PERMANENT_ERRORS:
        return  # the configuration itself is the failure; no MLflow run was started with it
    mark(config, context["run_id"])


def run_readmit(context: Mapping[str, Any]) -> dict[str, Any]:
    from bertloop.pipeline.steps import readmit

    dag_run = context["dag_run"]
    who = getattr(dag_run, "triggering_user_name", None) or "unknown user"
    try:
        config = config_from_params(context["params"], {})
        params = context["params"]
        return readmit(
            config,
            params["batch_id"],
            actor=f"airflow:readmit:{context['run_id']} by {who}",
            reason=params["reason"],
        )
    except (ValueError, *PERMANENT_ERRORS) as error:
        raise AirflowFailException(str(error)) from error


def drift_data_path(context: Mapping[str, Any]) -> str | None:
    """The feedback batch a drift event carries, when drift (not the clock or a person) started the run."""
    events = context.get("triggering_asset_events") or {}
    for asset, asset_events in events.items():
        if getattr(asset, "uri", None) == constants.DRIFT_ASSET_URI and asset_events:
            return asset_events[-1].extra.get("data_path")
    return None


def run_drift_check(context: Mapping[str, Any]) -> dict[str, Any]:
    try:
        config = config_from_params(context["params"], {})
    except PERMANENT_ERRORS as error:
        raise AirflowFailException(str(error)) from error
    # At most one retrain at a time: ask Airflow how many are queued or running.
    running = context["ti"].get_dr_count(dag_id=constants.DAG_RETRAIN, states=["queued", "running"])
    outcome = run_check(
        config, lambda version: steps.training_texts(config, version), retrains_running=int(running)
    )
    return outcome.model_dump(mode="json")


def announce_drift(outcome: Mapping[str, Any], context: Mapping[str, Any], asset: Any) -> dict[str, Any]:
    if not outcome.get("triggered"):
        reason = outcome.get("reason", "no retrain needed")
        set_run_note(context, f"No retrain: {reason}")
        raise AirflowSkipException(reason)
    evidence = {
        "data_path": outcome["data_path"],
        "snapshot": outcome["snapshot"],
        "report": outcome["report"],
        "signals": [s["name"] for s in outcome["signals"] if s["drifted"]],
    }
    context["outlet_events"][asset].extra = evidence
    return evidence
