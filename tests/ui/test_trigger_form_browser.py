"""A person triggers `retrain` from the Airflow UI's form in a real browser, and the scheduler runs it.

The local stack (devtools/stack.py: API server, scheduler, DAG processor, triggerer on the
LocalExecutor) runs on a tiny-BERT workspace; headless Chromium (Debian's package, driven by
Playwright) opens the DAG, fills the trigger form's data path and submits it. The test then
follows the run through Airflow's REST API until the scheduler has executed every step, and reads
a task log back the way the UI does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.process import free_port
from devtools.stack import AIRFLOW_SERVICES, Ports, Stack
from tests.conftest import synthetic_rows, write_config

pytestmark = pytest.mark.processes
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("ui")
    golden = synthetic_rows(10, seed=1000)
    config_file = write_config(root, tiny_checkpoint, golden, **{"orchestration.schedule": None})
    synthetic_rows(12, seed=1, exclude=set(golden["text"])).to_csv(root / "batch-01.csv", index=False)
    stack = Stack(config_file, Ports(airflow=free_port(), mlflow=free_port(), gateway=free_port()))
    stack.up(only=AIRFLOW_SERVICES)
    try:
        yield stack
    finally:
        stack.down()


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
        page.goto(f"http://127.0.0.1:{stack.ports.airflow}/dags/retrain", wait_until="networkidle")
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
    monkeypatch.setenv("BERTLOOP_AIRFLOW_API_URL", f"http://127.0.0.1:{stack.ports.airflow}")
    context = {"dag": SimpleNamespace(dag_id="rollback"), "run_id": run_id}
    assert set_run_note(context, "Rolled back v3: agreement 0.0% over 62 texts")
    note = api.client.get(f"/dags/rollback/dagRuns/{run_id}").json()["note"]
    assert note == "Rolled back v3: agreement 0.0% over 62 texts"
    monkeypatch.setenv("BERTLOOP_AIRFLOW_API_URL", "http://127.0.0.1:9")  # nothing listens: no note, no error
    assert set_run_note(context, "unreachable") is False
