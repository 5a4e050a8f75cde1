#!/usr/bin/env python
"""The docker-compose topology, natively, on this machine: a real end-to-end check of Celery + GPU queue.

Against the machine's PostgreSQL and Redis it starts an MLflow tracking server
and Airflow's api-server, scheduler, dag-processor and two Celery workers (queues
``default`` and ``gpu``); triggers ``retrain`` through Airflow's REST API; waits
for it to succeed; checks that the train task ran on the gpu worker and that the
model landed in the MLflow server's registry; and stops everything it started.

Every run creates its own PostgreSQL databases and Redis key prefix, and removes
them afterwards, so runs never see each other's state. It prints a JSON summary
on its last line and exits non-zero if any check fails.

    python scripts/native_stack.py --config my.yaml --data batch.csv
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # devtools and bertloop from this checkout

from bertloop.core.env import DEFAULTS as ENV_DEFAULTS  # noqa: E402
from devtools.process import free_port  # noqa: E402

BIN = Path(sys.executable).parent
ADMIN = "admin"


class NativeStack:
    def __init__(self, config: Path, postgres: str, redis: str, workdir: Path):
        self.tag = secrets.token_hex(4)
        self.config = config
        self.postgres = postgres.rstrip("/")  # postgresql://user@host:port, no database
        self.redis = redis
        self.workdir = workdir
        self.databases = {"airflow": f"bertloop_airflow_{self.tag}", "mlflow": f"bertloop_mlflow_{self.tag}"}
        self.key_prefix = f"bertloop-{self.tag}:"
        self.api_port, self.mlflow_port = free_port(), free_port()
        self.password = secrets.token_urlsafe(12)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.token = ""

    # --- lifecycle -----------------------------------------------------------------------------
    def create_databases(self) -> None:
        for name in self.databases.values():
            self._sql(f'CREATE DATABASE "{name}"')

    def drop_databases(self) -> None:
        for name in self.databases.values():
            self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def clear_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis)
        keys = list(client.scan_iter(match=f"{self.key_prefix}*"))
        if keys:
            client.delete(*keys)

    def env(self, **extra: str) -> dict[str, str]:
        home = self.workdir / "airflow"
        airflow_db = self._sqlalchemy_url(self.databases["airflow"])
        return {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bertloop.pipeline.orchestration.worker_hostname",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.password + "-jwt",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__CELERY__BROKER_URL": self.redis,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db}",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": self.key_prefix,
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            "BERTLOOP_CONFIG": str(self.config),
            "BERTLOOP_WORKSPACE": str(self.workdir / "workspace"),
            "BERTLOOP_REGISTRY__TRACKING_URI": self.tracking_uri,
            **ENV_DEFAULTS,
            **extra,
        }

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def start(self) -> None:
        home = self.workdir / "airflow"
        home.mkdir(parents=True)
        (home / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        self._spawn(
            "mlflow",
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
             "--backend-store-uri", self._sqlalchemy_url(self.databases["mlflow"]),
             "--artifacts-destination", str(self.workdir / "mlartifacts"), "--workers", "1"],
        )  # fmt: skip
        self._run(["db", "migrate"])
        self._run(["pools", "set", "gpu_training", "1", "GPU training slots"])
        airflow = str(BIN / "airflow")
        self._spawn("api-server", [airflow, "api-server", "--port", str(self.api_port)])
        self._spawn("scheduler", [airflow, "scheduler"])
        self._spawn("dag-processor", [airflow, "dag-processor"])
        for queue, name in (("default", "cpu-worker"), ("gpu", "gpu-worker")):
            self._spawn(
                name,
                [airflow, "celery", "worker", "--queues", queue, "--concurrency", "1",
                 "--celery-hostname", f"{name}-{self.tag}@%h", "--without-mingle", "--without-gossip"],
                BERTLOOP_WORKER_HOSTNAME=f"{name}-{self.tag}",
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            )  # fmt: skip

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    # --- Airflow REST API ------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=self._headers(),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def wait_until_ready(self, timeout: float) -> None:
        self._poll(
            lambda: self._try(lambda: urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=5)),
            timeout,
            "MLflow",
        )
        self._poll(lambda: self._try(self._login), timeout, "Airflow api-server")
        self._poll(
            lambda: self._try(lambda: self.api("GET", "/api/v2/dags/retrain")), timeout, "retrain DAG parsed"
        )

    def trigger(self, conf: dict[str, Any]) -> str:
        self.api("PATCH", "/api/v2/dags/retrain", {"is_paused": False})  # DAGs start paused
        run = self.api("POST", "/api/v2/dags/retrain/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def wait_for_run(self, run_id: str, timeout: float) -> str:
        path = f"/api/v2/dags/retrain/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        state = ""

        def finished() -> bool:
            nonlocal state
            state = self.api("GET", path)["state"]
            self._check_alive()
            return state in {"success", "failed"}

        self._poll(finished, timeout, f"DAG run {run_id}")
        return state

    def task_instance(self, run_id: str, task_id: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(run_id, safe="")
        return dict(self.api("GET", f"/api/v2/dags/retrain/dagRuns/{quoted}/taskInstances/{task_id}"))

    # --- helpers --------------------------------------------------------------------------------
    def log_tails(self, lines: int = 40) -> str:
        chunks = []
        for name in self.processes:
            log = self.workdir / "logs" / f"{name}.log"
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(chunks)

    def _login(self) -> None:
        response = self.api("POST", "/auth/token", {"username": ADMIN, "password": self.password})
        self.token = response["access_token"]

    def _spawn(self, name: str, command: list[str], **extra: str) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        handle = (logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command, env=self.env(**extra), cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _run(self, args: list[str]) -> None:
        completed = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env(), cwd=self.workdir, capture_output=True, text=True
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}"
            )

    def _sql(self, statement: str) -> None:
        import psycopg2

        connection = psycopg2.connect(f"{self.postgres}/postgres")
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def _sqlalchemy_url(self, database: str) -> str:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the stack uses psycopg2.
        return f"{self.postgres}/{database}".replace("postgresql://", "postgresql+psycopg2://", 1)

    def _check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"stack processes exited early: {dead}")

    def _poll(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if condition():
                return
            time.sleep(2)
        raise TimeoutError(f"{what} not ready after {timeout:.0f}s")

    @staticmethod
    def _try(action: Any) -> bool:
        try:
            action()
            return True
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            return False


def check_registry(stack: NativeStack, config: Path, run_id: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    from bertloop.core.config import load_config

    model_name = load_config(config).registry.model_name
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    versions = client.search_model_versions(f"name = '{model_name}'")
    matching = [v for v in versions if v.tags.get("bertloop.airflow_run_id") == run_id]
    if not matching:
        raise AssertionError(f"no version of {model_name} in the MLflow server's registry for run {run_id}")
    version = str(matching[0].version)
    aliases = sorted(
        a for a, v in client.get_registered_model(model_name).aliases.items() if str(v) == version
    )
    return {"model_name": model_name, "version": version, "aliases": aliases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="bertloop YAML configuration for the run")
    parser.add_argument("--data", required=True, help="labelled batch to retrain on")
    parser.add_argument(
        "--postgres", default=os.environ.get("BERTLOOP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--redis", default=os.environ.get("BERTLOOP_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the DAG run")
    args = parser.parse_args(argv)
    config = Path(args.config).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bertloop-stack-"))
    stack = NativeStack(config, args.postgres, args.redis, workdir)
    summary: dict[str, Any] = {"workdir": str(workdir), "databases": list(stack.databases.values())}
    started = time.monotonic()
    try:
        stack.create_databases()
        stack.start()
        stack.wait_until_ready(timeout=300)
        run_id = stack.trigger({"data_path": str(Path(args.data).resolve()), "config_path": str(config)})
        state = stack.wait_for_run(run_id, timeout=args.timeout)
        train = stack.task_instance(run_id, "train")
        summary.update(
            run_id=run_id,
            state=state,
            train_queue=train.get("queue"),
            train_hostname=train.get("hostname"),
            other_hostnames=sorted(
                {
                    stack.task_instance(run_id, task).get("hostname")
                    for task in ("ingest", "validate", "evaluate")
                }
            ),
        )
        if state != "success":
            raise AssertionError(f"retrain ended in state {state}")
        if train.get("queue") != "gpu" or train.get("hostname") != f"gpu-worker-{stack.tag}":
            raise AssertionError(
                f"train ran on {train.get('hostname')} (queue {train.get('queue')}), not the gpu worker"
            )
        summary["registry"] = check_registry(stack, config, run_id)
        summary["ok"] = True
    except Exception as error:
        summary.update(ok=False, error=f"{type(error).__name__}: {error}")
        print(stack.log_tails(), file=sys.stderr)
    finally:
        stack.stop()
        stack.clear_redis()
        stack.drop_databases()
        summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
