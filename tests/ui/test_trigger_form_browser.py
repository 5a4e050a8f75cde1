"""A person logs in to the Airflow UI and triggers `retrain` from its form in a real browser, and the
scheduler runs it.

The local stack (devtools/stack.py: API server, scheduler, DAG processor, triggerer on the
LocalExecutor) runs on a tiny-BERT workspace with its login on, as `make up` starts it; headless
Chromium (Debian's package, driven by Playwright) signs in on Airflow's login page, opens the DAG,
fills the trigger form's data path and submits it. The test then follows the run through Airflow's
REST API until the scheduler has executed every step, and reads a task log back the way the UI does.
The login itself is checked too: anonymous requests are refused, the stored password gets a token,
and a second `up` does not print the password again.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bertloop.pipeline import airflow_api
from devtools import airflow_login
from devtools.process import free_port
from devtools.stack import AIRFLOW_SERVICES, Ports, Stack
from tests.conftest import synthetic_rows, write_config

pytestmark = pytest.mark.processes
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[tuple[Stack, str]]:
    """The stack, and the password its first `up` made (and `python -m devtools.stack up` prints)."""
    root = tmp_path_factory.mktemp("ui")
    golden = synthetic_rows(10, seed=1000)
    config_file = write_config(root, tiny_checkpoint, golden, **{"orchestration.schedule": None})
    synthetic_rows(12, seed=1, exclude=set(golden["text"])).to_csv(root / "batch-01.csv", index=False)
    stack = Stack(config_file, Ports(airflow=free_port(), mlflow=free_port(), gateway=free_port()))
    new_password = stack.ensure_login()
    assert new_password, "a fresh workspace gets a new password"
    stack.up(only=AIRFLOW_SERVICES)
    try:
        yield stack, new_password
    finally:
        stack.down()


@pytest.fixture(scope="module")
def stack(started: tuple[Stack, str]) -> Stack:
    return started[0]


def test_the_retrain_form_submits_a_run_that_the_scheduler_completes(stack: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "install Debian's chromium package (.ci/run does)"
    api = stack.api()
    api.wait_for_dag("retrain")
    api.unpause("retrain")
    before = {run["dag_run_id"] for run in api.runs("retrain")}
    batch = stack.config_path.parent / "batch-01.csv"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        airflow = f"http://127.0.0.1:{stack.ports.airflow}"
        page.goto(f"{airflow}/dags/retrain", wait_until="networkidle")
        page.wait_for_url("**/auth/login**")  # an anonymous visitor is sent to the login page
        airflow_login.sign_in(page, airflow, stack.airflow_login())
        page.goto(f"{airflow}/dags/retrain", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        dialog.locator("#element_data_path").fill(str(batch))
        page.screenshot(path=str(tmp_path / "trigger-form.png"), full_page=True)
        submit = dialog.get_by_role("button", name="Trigger")
        assert submit.is_enabled(), "the form must submit with its defaults and a data path"
        submit.click()
        page.wait_for_timeout(1000)
        browser.close()
    (run_id,) = {run["dag_run_id"] for run in api.runs("retrain")} - before
    assert api.wait_for_run("retrain", str(run_id), timeout=600) == "success", api.task_states(
        "retrain", run_id
    )
    states = api.task_states("retrain", str(run_id))
    assert {
        task: states[task] for task in ("ingest", "validate", "version", "train", "evaluate", "register")
    } == (dict.fromkeys(("ingest", "validate", "version", "train", "evaluate", "register"), "success"))
    run = next(r for r in api.runs("retrain") if r["dag_run_id"] == run_id)
    assert run["conf"]["data_path"] == str(batch) and run["conf"]["epochs"] is None
    log = api.client.get(f"/dags/retrain/dagRuns/{run_id}/taskInstances/train/logs/1").json()
    assert any("train" in str(line.get("event", "")) for line in log["content"])  # readable, not "refused"


def test_a_task_writes_its_runs_note_through_the_rest_api(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a rolled-back canary, a rejected batch or a storm-control skip writes on its run."""
    from types import SimpleNamespace

    from bertloop.pipeline.orchestration import set_run_note

    api = stack.api()
    api.wait_for_dag("rollback")
    run_id = api.trigger("rollback", {"reason": "checking the note"})  # rollback stays paused: it never runs
    for name in airflow_api.ENV_NAMES:  # what the stack gives its tasks: the URL and the passwords file
        monkeypatch.delenv(name, raising=False)
        if name in stack.airflow_env:
            monkeypatch.setenv(name, stack.airflow_env[name])
    context = {"dag": SimpleNamespace(dag_id="rollback"), "run_id": run_id}
    assert set_run_note(context, "Rolled back v3: agreement 0.0% over 62 texts")
    note = api.client.get(f"/dags/rollback/dagRuns/{run_id}").json()["note"]
    assert note == "Rolled back v3: agreement 0.0% over 62 texts"
    monkeypatch.setenv(airflow_api.ENV_PASSWORD, "not-the-password")  # refused: no note, no error
    assert set_run_note(context, "refused") is False
    monkeypatch.delenv(airflow_api.ENV_PASSWORD)
    monkeypatch.setenv(airflow_api.ENV_URL, "http://127.0.0.1:9")  # nothing listens: no note, no error
    assert set_run_note(context, "unreachable") is False
    assert api.client.get(f"/dags/rollback/dagRuns/{run_id}").json()["note"] == note


def test_the_local_airflow_asks_for_a_login_and_shows_the_password_once(
    started: tuple[Stack, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in the module: its second `up` also starts the MLflow UI and the gateway, as `make up` does."""
    from devtools.stack import main

    monkeypatch.delenv(airflow_login.ENV_SWITCH, raising=False)
    stack, shown = started
    path = airflow_login.passwords_file(stack.workspace)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"admin": shown}
    airflow = f"http://127.0.0.1:{stack.ports.airflow}"
    assert httpx.get(f"{airflow}/api/v2/dags", timeout=30).status_code == 401
    wrong = httpx.post(f"{airflow}/auth/token", json={"username": "admin", "password": "guess"}, timeout=30)
    assert wrong.status_code == 401
    headers = airflow_api.auth_headers(airflow, airflow_api.AirflowLogin("admin", shown))
    dags = httpx.get(f"{airflow}/api/v2/dags", headers=headers, timeout=30)
    assert dags.status_code == 200 and "retrain" in {dag["dag_id"] for dag in dags.json()["dags"]}
    ports = stack.ports
    assert main(["up", "--config", str(stack.config_path), "--airflow-port", str(ports.airflow),
                 "--mlflow-port", str(ports.mlflow), "--gateway-port", str(ports.gateway)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert str(path) in printed.out and shown not in printed.out + printed.err
    assert json.loads(path.read_text()) == {"admin": shown}  # the same password, still 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
