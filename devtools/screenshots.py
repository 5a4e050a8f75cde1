"""Screenshots of what a person sees, for the README: taken in headless Chromium from a running stack.

After ``make demo`` (which leaves the stack running on demo-workspace):

    .venv/bin/python -m devtools.screenshots --config demo-workspace/bertloop.yaml --out docs/screenshots

It saves the retrain trigger form, the canary DAG's grid (with the rolled-back canary), the MLflow
model registry with its aliases, the drift report of the confirmed drift, and the drift timeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from devtools import airflow_login
from devtools.stack import Ports, Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1360, "height": 900}


def take(stack: Stack, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    airflow = f"http://127.0.0.1:{stack.ports.airflow}"
    mlflow = f"http://127.0.0.1:{stack.ports.mlflow}"
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        airflow_login.sign_in(page, airflow, stack.airflow_login())

        page.goto(f"{airflow}/dags/retrain", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        page.get_by_role("dialog").get_by_text("Run Parameters").wait_for()
        page.wait_for_timeout(500)
        shots.append(_shot(page, out / "trigger-form.png"))
        page.keyboard.press("Escape")

        page.goto(f"{airflow}/dags/canary/runs", wait_until="networkidle")  # state and note per run
        page.wait_for_timeout(1500)
        shots.append(_shot(page, out / "canary-runs.png"))
        failed = [run for run in stack.api().runs("canary") if run["state"] == "failed"]
        if failed:  # the rolled-back canary's own page: the failed task and the run's note
            page.goto(f"{airflow}/dags/canary/runs/{failed[0]['dag_run_id']}", wait_until="networkidle")
            page.wait_for_timeout(1500)
            shots.append(_shot(page, out / "canary-rollback.png"))

        page.goto(f"{mlflow}/#/models/{stack.config.registry.model_name}", wait_until="load")
        page.get_by_text("champion").first.wait_for(timeout=30_000)  # the MLflow UI polls: no network idle
        assistant = page.get_by_text("MLflow Assistant")
        if assistant.count():  # MLflow 3 opens a chat side panel; its close button sits at the far right
            box = assistant.first.bounding_box()
            if box:
                page.mouse.click(VIEWPORT["width"] - 36, box["y"] + box["height"] / 2)
        page.wait_for_timeout(1000)
        shots.append(_shot(page, out / "model-registry.png"))

        reports = sorted(
            path
            for path in (stack.workspace / "drift" / "reports").glob("*.html")
            if not path.name.endswith(".evidently.html")  # the platform's own report, which links to it
        )
        confirmed = [path for path in reports if "DRIFT" in path.read_text(errors="replace")]
        if confirmed or reports:
            page.goto((confirmed or reports)[-1].resolve().as_uri(), wait_until="load")
            shots.append(_shot(page, out / "drift-report.png"))
        browser.close()
    timeline = stack.workspace.parent / "drift-timeline.png"
    for candidate in (timeline, stack.workspace / "drift-timeline.png"):
        if candidate.is_file():
            shutil.copyfile(candidate, out / "drift-timeline.png")
            shots.append(out / "drift-timeline.png")
            break
    return shots


def _shot(page: object, path: Path) -> Path:
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.screenshots", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--airflow-port", type=int, default=Ports.airflow)
    parser.add_argument("--mlflow-port", type=int, default=Ports.mlflow)
    args = parser.parse_args(argv)
    login = airflow_login.login_wanted(os.environ)  # as the stack was started: `make up` or AIRFLOW_LOGIN=off
    stack = Stack(Path(args.config), Ports(airflow=args.airflow_port, mlflow=args.mlflow_port), login)
    for path in take(stack, Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
