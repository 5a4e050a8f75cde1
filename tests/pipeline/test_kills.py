"""kill -9 anywhere: a real `bertloop run` process killed at a crash point, then retried.

Each retry must complete the run, with exactly one registered version, lineage that
resolves to the exact data, aliases that agree with the ledger, and an MLflow run
that is FINISHED. Two runs started together on one workspace each train on their
own batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import load_config
from bertloop.core.faults import ENV, POINTS
from bertloop.core.stores.ledger import Ledger
from tests.conftest import synthetic_rows, write_config

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[2]
# Every crash point: each step boundary (after its manifest) and inside the critical sections.
STRIKES = POINTS


def _run(config_file: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != ENV}
    if crash_at:
        env[ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "bertloop.pipeline.cli", "--config", str(config_file), "run", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("strike", STRIKES)
def test_a_run_killed_anywhere_completes_on_retry(
    strike: str, tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame
) -> None:
    from registry.mlflow_registry import connect

    config_file = write_config(tmp_path, tiny_checkpoint, golden_frame)
    config = load_config(config_file, environ={})
    landing = config.data.landing_dir
    landing.mkdir(parents=True)
    batch = landing / "batch.csv"
    synthetic_rows(12, seed=5, exclude=set(golden_frame["text"])).to_csv(batch, index=False)
    original = batch.read_bytes()
    os.utime(batch, (time.time() - 60,) * 2)

    killed = _run(config_file, "--run-key", "k", crash_at=strike)
    assert killed.returncode == -9, killed.stderr[-3000:]
    retried = _run(config_file, "--run-key", "k")
    assert retried.returncode == 0, retried.stderr[-3000:]

    client = connect(config)
    name = config.registry.model_name
    (version,) = client.search_model_versions(f"name = '{name}'")  # exactly one version
    assert client.get_run(version.run_id).info.status == "FINISHED"
    # Lineage resolves to the exact data: the recorded commit holds the batch, byte for byte.
    runs = config.workspace / "runs" / "k"
    versioned = json.loads((runs / "version.json").read_text())
    repo = Path(versioned["data_repo"])
    assert f"{versioned['batch_path']}.dvc" in _git(
        repo, "ls-tree", "-r", "--name-only", versioned["data_rev"]
    )
    assert (repo / versioned["batch_path"]).read_bytes() == original
    assert version.tags[constants.TAG_DATA_PATH] == f"{repo}@{versioned['data_rev']}"
    # The aliases agree with the ledger, which recorded the change once.
    assert {a: str(v) for a, v in client.get_registered_model(name).aliases.items()} == {"champion": "1"}
    changes = [e for e in Ledger(config.ledger_url).entries(name) if e.alias == "champion"]
    assert [(e.action, e.to_version) for e in changes] == [("register", "1")]
    # The batch was taken once, and nothing is left claimed in the landing folder.
    assert not any(landing.rglob("*.csv"))


def test_two_runs_at_once_each_train_on_their_own_batch(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame
) -> None:
    from registry.mlflow_registry import connect

    config_file = write_config(tmp_path, tiny_checkpoint, golden_frame)
    config = load_config(config_file, environ={})
    batches = []
    for seed in (1, 2):
        batches.append(tmp_path / f"batch-{seed}.csv")
        synthetic_rows(12, seed=seed, exclude=set(golden_frame["text"])).to_csv(batches[-1], index=False)
    env = {key: value for key, value in os.environ.items() if key != ENV}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bertloop.pipeline.cli",
                "--config",
                str(config_file),
                "run",
                str(path),
                "--run-key",
                f"run-{index}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, path in enumerate(batches)
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[:1500] + " ... " + err[-1500:]
    client = connect(config)
    name = config.registry.model_name
    assert len(client.search_model_versions(f"name = '{name}'")) == 2  # one version per run
    for index, path in enumerate(batches):
        versioned = json.loads((config.workspace / "runs" / f"run-{index}" / "version.json").read_text())
        assert versioned["batch_path"].startswith(f"batches/{path.stem}-")  # its own batch
        assert any(Path(f).name == Path(versioned["batch_path"]).name for f in versioned["training_files"])
    ledger = Ledger(config.ledger_url).entries(name)
    aliases = {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}
    for alias, version in aliases.items():  # the registry agrees with the last change the ledger recorded
        last = [e for e in ledger if e.alias == alias][-1]
        assert last.to_version == version
