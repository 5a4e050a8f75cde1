"""The local stack on embedded defaults: Airflow (API server with the UI, scheduler, DAG processor,
triggerer), the MLflow UI and the serving gateway, each a background service of one workspace.

``python -m devtools.stack up --config WORKSPACE/bertloop.yaml`` starts what is not running yet and
prints each URL; ``down`` stops them; ``status`` shows them. Logs go to ``<workspace>/stack/logs``,
process ids to ``<workspace>/stack/pids``. Airflow runs on SQLite with the LocalExecutor, so a run
triggered from the UI is scheduled and executed, and its task logs are readable in the UI. Every
service listens on 127.0.0.1 only, and Airflow asks for a login (``devtools.airflow_login``) unless
``--no-login`` or ``BERTLOOP_AIRFLOW_LOGIN=off`` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bertloop.core.env import DEFAULTS as ENV_DEFAULTS
from bertloop.pipeline import airflow_api
from bertloop.pipeline.airflow_api import AirflowLogin
from devtools import airflow_login
from devtools.airflow_login import LoginSetupError
from devtools.process import ServerDidNotStart, wait_until_healthy

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    gateway: int = 8000


class StackError(RuntimeError):
    """The stack cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    health_url: str | None  # None: a background worker with no HTTP endpoint
    shows: str  # what a person finds there

    @property
    def port(self) -> int | None:
        return None if self.health_url is None else int(self.health_url.split(":")[2].split("/")[0])


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def airflow_environment(
    workspace: Path, config_path: Path, api_port: int = 8080, login: bool = True
) -> dict[str, str]:
    """Airflow on SQLite in ``<workspace>/airflow``, this repository's DAGs and plugins, bertloop's config;
    with ``login``, the simple auth manager's one admin (``devtools.airflow_login``)."""
    home = workspace / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **airflow_login.environment(workspace, login),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # The DAG files change only with the code: re-parse each every 2 minutes, not every 30 s.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        "BERTLOOP_CONFIG": str(config_path),
        airflow_api.ENV_URL: f"http://127.0.0.1:{api_port}",  # tasks write their runs' notes
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **ENV_DEFAULTS,
    }


AIRFLOW_SERVICES = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def services(config_path: Path, tracking_uri: str, ports: Ports) -> list[Service]:
    airflow = str(BIN / "airflow")
    api = f"http://127.0.0.1:{ports.airflow}"
    return [
        Service("airflow-api-server", [airflow, "api-server", "--port", str(ports.airflow)],
                f"{api}/api/v2/monitor/health", f"Airflow UI: DAGs, trigger forms, runs, task logs: {api}"),
        Service("airflow-scheduler", [airflow, "scheduler"], None, "schedules and runs the DAGs' tasks"),
        Service("airflow-dag-processor", [airflow, "dag-processor"], None, "parses the DAG files"),
        Service("airflow-triggerer", [airflow, "triggerer"], None, "runs deferred tasks"),
        Service("mlflow-ui", [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking_uri,
                              "--host", "127.0.0.1", "--port", str(ports.mlflow)],
                f"http://127.0.0.1:{ports.mlflow}/health",
                f"MLflow UI: runs, metrics, artifacts, the model registry and its aliases: "
                f"http://127.0.0.1:{ports.mlflow}"),
        Service("gateway", [str(BIN / "bertloop"), "--config", str(config_path), "serve",
                            "--host", "127.0.0.1", "--port", str(ports.gateway)],
                f"http://127.0.0.1:{ports.gateway}/openapi.json",
                f"serving gateway: /predict, /feedback, /healthz, /metrics, /docs: "
                f"http://127.0.0.1:{ports.gateway}"),
    ]  # fmt: skip


def alive_pid(pid_file: Path) -> int | None:
    """The process id in ``pid_file`` if that process is alive (a process of another user counts)."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, and another user's
        pass
    return pid


def running_services(workspace: Path) -> list[str]:
    """The services of ``workspace``'s stack that are alive, by their pid files."""
    return sorted(path.stem for path in (workspace / "stack" / "pids").glob("*.pid") if alive_pid(path))


class Stack:
    def __init__(self, config_path: Path, ports: Ports = Ports(), login: bool = True):
        from bertloop.core.config import load_config

        self.config_path = config_path.resolve()
        self.config = load_config(self.config_path, environ={})
        self.workspace = self.config.workspace
        self.ports = ports
        self.login = login
        self.folder = self.workspace / "stack"
        self.airflow_env = airflow_environment(self.workspace, self.config_path, ports.airflow, login)
        self.env = {**os.environ, **self.airflow_env}
        self.services = services(self.config_path, self.config.tracking_uri, ports)

    def pid_file(self, name: str) -> Path:
        return self.folder / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.folder / "logs" / f"{name}.log"

    def running(self, name: str) -> int | None:
        """The service's process id, if it is alive."""
        return alive_pid(self.pid_file(name))

    def prepare(self) -> None:
        """The MLflow and Airflow databases and the training pool, before any service opens them.

        The MLflow UI and the gateway would otherwise both migrate a new MLflow database at once.
        """
        from registry.mlflow_registry import connect

        connect(self.config).search_experiments()
        for args in (["db", "migrate"], ["pools", "set", self.config.orchestration.train_pool, "1",
                                         "Slots for fine-tuning"]):  # fmt: skip
            completed = subprocess.run(
                [str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True, check=False
            )
            if completed.returncode != 0:
                raise SystemExit(f"airflow {' '.join(args)} failed:\n{completed.stderr[-3000:]}")

    def ensure_login(self) -> str | None:
        """The Airflow admin's password if this call made it (show it then), else None."""
        return airflow_login.ensure_password(self.workspace) if self.login else None

    def airflow_login(self) -> AirflowLogin | None:
        """How to log in to this stack's Airflow; None where it has no login."""
        return airflow_login.stored_login(self.workspace) if self.login else None

    def up(self, only: Sequence[str] | None = None, timeout: float = 240) -> None:
        """Start the services (``only``: those named) that are not running yet, and wait until they answer."""
        (self.folder / "pids").mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        wanted = [s for s in self.services if not self.running(s.name) and (only is None or s.name in only)]
        for service in wanted:  # another server on our port would answer our health check for us
            if service.port is not None and not _port_free(service.port):
                raise StackError(
                    f"port {service.port} for {service.name} is taken (another stack still up? "
                    f"`make down STACK_CONFIG=...`), or choose another port (--airflow-port, --mlflow-port, "
                    "--gateway-port)"
                )
        self.ensure_login()  # before the API server, which would otherwise make a password of its own
        self.prepare()
        started: list[tuple[Service, subprocess.Popen[bytes]]] = []
        for service in wanted:
            with self.log_file(service.name).open("ab") as log:
                process = subprocess.Popen(
                    service.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.workspace, start_new_session=True,  # outlives this command, like a service
                )  # fmt: skip
            self.pid_file(service.name).write_text(str(process.pid))
            started.append((service, process))
        for service, process in started:
            if service.health_url:
                try:
                    wait_until_healthy(service.health_url, process, timeout, self.log_file(service.name))
                except ServerDidNotStart:
                    self.down()
                    raise

    def down(self, timeout: float = 60) -> list[str]:
        stopped = []
        for service in reversed(self.services):
            pid = self.running(service.name)
            if pid is not None:
                _stop_group(pid, timeout)
                stopped.append(service.name)
            self.pid_file(service.name).unlink(missing_ok=True)
        return stopped

    def describe(self) -> list[dict[str, object]]:
        return [
            {"service": s.name, "pid": self.running(s.name), "log": str(self.log_file(s.name)),
             "shows": s.shows}
            for s in self.services
        ]  # fmt: skip

    def api(self) -> AirflowApi:
        return AirflowApi(f"http://127.0.0.1:{self.ports.airflow}", self.airflow_login())


class AirflowApi:
    """The few calls of Airflow's public REST API (v2) that the stack, the demo and the UI test make,
    logged in as ``login`` where the stack has one."""

    def __init__(self, base_url: str, login: AirflowLogin | None = None):
        headers = airflow_api.auth_headers(base_url, login)
        self.client = httpx.Client(base_url=f"{base_url}/api/v2", headers=headers, timeout=30)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.client.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                return
            if response.status_code in (401, 403):  # waiting cannot fix a missing or refused login
                raise StackError(f"Airflow refused the login ({response.status_code}): {response.text[:200]}")
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f} s; see the dag-processor log")

    def unpause(self, dag_id: str) -> None:
        self.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def trigger(self, dag_id: str, conf: Mapping[str, object]) -> str:
        response = self.client.post(
            f"/dags/{dag_id}/dagRuns", json={"conf": dict(conf), "logical_date": None}
        )
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, object]]:
        response = self.client.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})
        response.raise_for_status()
        return list(response.json()["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> str:
        """The run's final state (success or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in {"success", "failed"}:
                return str(state)
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f} s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {item["task_id"]: item["state"] for item in response.json()["task_instances"]}


def _stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the service's process group (Airflow forks workers), then SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Started by this process (the UI test), the service lingers as a zombie until reaped.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--config", required=True, help="the workspace's bertloop.yaml (the demo's: "
                        "demo-workspace/bertloop.yaml)")  # fmt: skip
    parser.add_argument("--airflow-port", type=int, default=Ports.airflow)
    parser.add_argument("--mlflow-port", type=int, default=Ports.mlflow)
    parser.add_argument("--gateway-port", type=int, default=Ports.gateway)
    parser.add_argument("--no-login", action="store_true", help="Airflow without a login, every visitor "
                        f"an admin (also {airflow_login.ENV_SWITCH}=off)")  # fmt: skip
    args = parser.parse_args(argv)
    config_path = Path(args.config)
    if not config_path.is_file():
        parser.error(f"{config_path} does not exist; run `make demo` first or pass --config")
    try:
        login = airflow_login.login_wanted(os.environ, args.no_login)
    except LoginSetupError as error:
        parser.error(str(error))
    stack = Stack(config_path, Ports(args.airflow_port, args.mlflow_port, args.gateway_port), login)
    if args.action == "down":
        print("stopped:", ", ".join(stack.down()) or "nothing was running")
        return 0
    if args.action == "up":
        try:
            new_password = stack.ensure_login()
            stack.up()
        except (StackError, LoginSetupError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"bertloop stack on {stack.workspace} (logs: {stack.folder / 'logs'}); `make down` stops it.")
        print("Every service listens on 127.0.0.1 only.")
        described = airflow_login.describe(stack.workspace, login, new_password, stack.ports.airflow)
        print(described, file=sys.stdout if login else sys.stderr)
    print(json.dumps(stack.describe(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
