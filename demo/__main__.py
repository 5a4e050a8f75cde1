"""The main job: the whole retraining loop, through Airflow and MLflow, on real news text.

It builds a fresh demo workspace from the BBC News corpus (``demo.data``)
and runs the DAGs through Airflow on SQLite:

1. ``retrain`` three times: the first batch gives the champion, the second a
   challenger compared with it, and a deliberately broken third batch is quarantined;
2. the gateway under live traffic, and ``canary`` twice: the challenger is
   promoted, a deliberately degraded model is rolled back (``demo.canary``);
3. the drift loop: steady traffic starts nothing, injected drift is detected,
   retrained on and the new model promoted through the canary (``demo.drift``).

It ends with the registry's summary and the commands that open the Airflow and
MLflow UIs on this data, and exits non-zero if any part did not do what it shows.

Run it with ``make demo``, or ``python -m demo`` inside the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from demo.data import write_inputs
from devtools import airflow_login
from devtools.stack import AIRFLOW_SERVICES, Stack

REPO_ROOT = Path(__file__).resolve().parent.parent


def airflow(args: list[str], env: dict[str, str], log: Path, check: bool = True) -> int:
    """Run an airflow command; ``dags test`` runs go through the stack's executor, so the UI shows
    each task's log like any scheduled run's."""
    test_run = args[:2] == ["dags", "test"]
    if test_run and "--use-executor" not in args:
        args = [*args, "--use-executor"]
    binary = str(Path(sys.executable).parent / "airflow")
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ airflow {' '.join(args)}\n")
        handle.flush()
        start = handle.tell()
        # One executor worker: Airflow 3.2's LocalExecutor can miss a shutdown message with several.
        extra = {"AIRFLOW__CORE__PARALLELISM": "1"} if test_run else {}
        process = subprocess.Popen(
            [binary, *args], env={**os.environ, **env, **extra}, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        code = _wait(process, log, start) if test_run else process.wait()
    if check and code != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed with exit code {code}; see {log}")
    return code


def _wait(process: subprocess.Popen[bytes], log: Path, start: int, grace: float = 30) -> int:
    """Wait for ``airflow dags test``; once its run has finished, give the executor ``grace`` seconds to
    shut down, then stop it (its exit code then comes from the run's final state)."""
    finished_at: float | None = None
    final = ""
    while process.poll() is None:
        time.sleep(1)
        if finished_at is None:
            with log.open(encoding="utf-8", errors="replace") as handle:
                handle.seek(start)
                final = next((line for line in handle if "DagRun Finished" in line), "")
            finished_at = time.monotonic() if final else None
        elif time.monotonic() - finished_at > grace:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return 0 if "state=success" in final else 1
    return process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspace", default=str(REPO_ROOT / "demo-workspace"))
    parser.add_argument("--golden-per-class", type=int, default=40)
    parser.add_argument("--batch-per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--skip-canary", action="store_true", help="stop after the retraining runs")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workspace = Path(args.workspace).resolve()
    if (workspace / "bertloop.yaml").is_file():
        Stack(workspace / "bertloop.yaml").down()  # a stack left running on the last demo's data
    if workspace.exists():
        shutil.rmtree(workspace)  # the demo's own folder: every demo starts from nothing
    workspace.mkdir(parents=True)
    config_path = write_inputs(workspace, args.seed, args.golden_per_class, args.batch_per_class)
    login = airflow_login.login_wanted(os.environ)
    stack = Stack(config_path, login=login)
    env = stack.airflow_env  # the stack's Airflow, and the tasks' login to its API (a file, not the password)
    (workspace / "env.sh").write_text(
        "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items()), encoding="utf-8"
    )
    log = workspace / "airflow-demo.log"
    _say(f"workspace {workspace}; Airflow output goes to {log}")
    _say(f"starting Airflow (API server and UI, scheduler, DAG processor, triggerer); logs in {stack.folder}")
    new_password = stack.ensure_login()  # shown once, at the end, where the UIs are listed
    stack.up(only=AIRFLOW_SERVICES)

    runs = [
        ("first batch: becomes the champion", {}),
        ("second, later batch: a challenger, compared with the champion", {}),
        (
            "broken batch: must be quarantined",
            {"data_path": str(workspace / "incoming" / "bbc-batch-03-broken.csv")},
        ),
    ]
    outcomes = []
    for title, conf in runs:
        _say(f"airflow dags test retrain  ({title})")
        began = time.monotonic()
        code = airflow(["dags", "test", "retrain", "--conf", json.dumps(conf)], env, log, check=False)
        outcomes.append((title, code, time.monotonic() - began))
        _say(f"  -> {'succeeded' if code == 0 else 'failed'} in {time.monotonic() - began:.0f}s")
    if outcomes[0][1] != 0 or outcomes[1][1] != 0:
        raise SystemExit(f"a retrain run failed; see {log}")
    if outcomes[2][1] == 0:
        raise SystemExit("the broken batch was not rejected; see the log")
    summary(config_path, workspace, env, time.monotonic() - started)
    if not args.skip_canary:
        from demo import canary as demo_canary
        from demo import drift as demo_drift

        print_canary(
            live_part(demo_canary.run, "serving and canary: live traffic through the gateway, two rollouts",
                      config_path, workspace, env, log)
        )  # fmt: skip
        print_drift(
            live_part(demo_drift.run, "drift: steady traffic, injected drift, detection, retraining, canary",
                      config_path, workspace, env, log)
        )  # fmt: skip
        summary(config_path, workspace, env, time.monotonic() - started)
    stack.up()  # the MLflow UI and the gateway join Airflow, on the demo's data
    print("\n=== The local stack keeps running on this data (`make down` stops it) ===")
    for service in stack.describe():
        print(f"  {service['service']:<22} {service['shows']}")
    print("  " + airflow_login.describe(stack.workspace, login, new_password, stack.ports.airflow))
    return 0


def live_part(
    run: Callable[..., dict[str, Any]],
    title: str,
    config_path: Path,
    workspace: Path,
    env: dict[str, str],
    log: Path,
) -> dict[str, Any]:
    """Run one of the live-traffic parts (canary, drift) on the held-out articles; return its report."""
    from bertloop.core.config import load_config

    _say(title)
    return run(
        load_config(config_path),
        pd.read_csv(workspace / "live-traffic.csv"),
        {**os.environ, **env},
        lambda args: airflow(args, env, log, check=False),
        workspace,
        _say,
    )


def print_canary(report: dict[str, Any]) -> None:
    print("\n=== Live traffic ===")
    print(
        f"{report['requests']} requests, {report['failed']} failed, "
        f"{report['rejected']} rejected with a 4xx, {report['feedback']} feedback labels; "
        f"{report['answered_and_logged']} of {report['answered']} answers have their prediction-log row"
    )
    print("\n=== Promotion ledger (bertloop ledger) ===")
    for entry in report["ledger"]:
        change = f"{entry['alias']}: {entry['from'] or '-'} -> {entry['to'] or '-'}" if entry["alias"] else ""
        print(f"  {entry['action']:<16} {change:<30} {entry['actor']:<38} {entry['summary'][:90]}")
    if report["failed"] or report["answered_and_logged"] != report["answered"]:
        raise SystemExit("the gateway failed requests or lost log rows during the rollouts")
    actions = [entry["action"] for entry in report["ledger"]]
    if "promote" not in actions or "canary_rollback" not in actions:
        raise SystemExit("the canary did not both promote the challenger and roll back the degraded model")


def print_drift(report: dict[str, Any]) -> None:
    print("\n=== Drift checks ===")
    for name, check in zip(("steady", "drifted", "after retrain"), report["checks"], strict=False):
        accuracy = "-" if check["live_accuracy"] is None else f"{check['live_accuracy']:.1%}"
        score = check["drift_score"]
        print(
            f"  {name:<14} champion v{check['champion']}  drift score {score:.4f}  live accuracy {accuracy}  "
            f"verdict: {check.get('level') or 'none'}  retrain: {bool(check['triggered'])}"
            f"  ({check['reason']})"
        )
        print(f"  {'':<14} compared with the {check.get('reference') or 'reference'}")
    print(f"  timeline picture: {report['timeline']}")
    if report["checks"][0]["triggered"]:
        raise SystemExit("steady traffic started a retrain; it must not")
    if len(report["checks"]) < 3 or report["checks"][2]["champion"] == report["checks"][1]["champion"]:
        raise SystemExit("the retrained model was not promoted through the canary; see `bertloop ledger`")


def summary(config_path: Path, workspace: Path, env: dict[str, str], elapsed: float) -> None:
    from bertloop.core.config import load_config
    from registry.summary import format_table, registry_rows

    config = load_config(config_path)
    rows = registry_rows(config)
    print("\n=== Model registry:", config.registry.model_name, "===")
    print(format_table(rows))
    for row in rows:
        print(f"\nv{row['version']} decision ({row['decision']}): {row['reasons']}")
    quarantined = sorted((config.workspace / "quarantine").glob("*/report.md"))
    print("\n=== Quarantine ===")
    for report in quarantined:
        print(report.read_text(encoding="utf-8"))
        print(f"(Great Expectations Data Docs: {report.parent / 'data_docs' / 'index.html'})")
    print(f"  DVC:     git -C {config.workspace / 'data-repo'} log --stat")
    print(f"\nDemo finished in {elapsed / 60:.1f} minutes.")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
