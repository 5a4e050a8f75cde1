"""The docker-compose topology run natively: real PostgreSQL, Redis, MLflow server, Celery workers.

Runs scripts/native_stack.py, which creates its own databases and Redis key
prefix, triggers retrain through Airflow's REST API and tears everything down.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, synthetic_rows, write_config

pytestmark = pytest.mark.integration


def _databases() -> set[str]:
    import psycopg2

    connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_retrain_on_celery_runs_train_on_the_gpu_worker(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame
) -> None:
    import redis

    config = write_config(tmp_path, tiny_checkpoint, golden_frame)
    batch = tmp_path / "batch.csv"
    synthetic_rows(12, seed=21, exclude=set(golden_frame["text"])).to_csv(batch, index=False)
    before = _databases()

    script = REPO_ROOT / "scripts" / "native_stack.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--config", str(config), "--data", str(batch)],
        capture_output=True,
        text=True,
        timeout=1200,
    )

    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 0 and summary["ok"], f"{summary}\n{completed.stderr[-6000:]}"
    assert summary["state"] == "success"
    assert summary["train_queue"] == "gpu" and summary["train_hostname"].startswith("gpu-worker-")
    assert all(name.startswith("cpu-worker-") for name in summary["other_hostnames"])
    assert summary["registry"]["version"] == "1" and summary["registry"]["aliases"] == ["champion"]
    # Everything it created is gone: its databases and its Redis keys.
    assert _databases() == before
    tag = summary["databases"][0].rsplit("_", 1)[1]
    assert not list(redis.Redis.from_url("redis://127.0.0.1:6379/0").scan_iter(match=f"bertloop-{tag}:*"))
