"""The landing folder under hostile files and concurrent runs: each batch is taken once, safely."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core.config import PlatformConfig
from bertloop.pipeline import steps
from intake.landing import claim_oldest, waiting
from tests.conftest import synthetic_rows


def _batch(path: Path, seed: int, golden: pd.DataFrame, age_seconds: float = 3600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_rows(5, seed=seed, exclude=set(golden["text"])).to_csv(path, index=False)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_links_partial_uploads_and_hidden_files_are_never_taken(
    tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    landing.mkdir(parents=True)
    secret = tmp_path / "secrets.csv"
    secret.write_text("text,label\nAPI_KEY=hunter2,sport\n")
    (landing / "innocent.csv").symlink_to(secret)
    _batch(landing / "upload.csv.part", 1, golden_frame)
    _batch(landing / ".hidden.csv", 2, golden_frame)
    with pytest.raises(steps.NoBatchWaiting) as nothing:
        steps.ingest(platform_config, "run-1")
    message = str(nothing.value)
    assert "innocent.csv (a symbolic link" in message and "upload.csv.part (a partial upload" in message
    assert ".hidden.csv" not in message
    # Nothing was copied anywhere, and every file is where it was.
    assert not any("hunter2" in p.read_text() for p in platform_config.workspace.rglob("*.csv"))
    assert (landing / "innocent.csv").is_symlink() and (landing / "upload.csv.part").is_file()


def test_a_file_still_being_written_waits_for_the_settle_time(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    fresh = _batch(landing / "fresh.csv", 1, golden_frame, age_seconds=0)
    settled = _batch(landing / "settled.csv", 2, golden_frame, age_seconds=60)
    taken, skipped = waiting(landing, settle_seconds=30)
    assert taken == [settled] and skipped[0].startswith("fresh.csv (modified 0 s ago")
    assert waiting(landing, settle_seconds=30, now=time.time() + 31)[0] == [settled, fresh]


def test_concurrent_ingests_take_each_batch_exactly_once(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    batches = [
        _batch(landing / f"batch-{i}.csv", 10 + i, golden_frame, age_seconds=100 - i) for i in range(3)
    ]
    originals = {path.name: path.read_bytes() for path in batches}

    def ingest(key: str) -> str:
        try:
            return Path(steps.ingest(platform_config, key).batch_file).name
        except steps.NoBatchWaiting:
            return "nothing"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(ingest, [f"run-{i}" for i in range(4)]))
    assert sorted(results) == ["batch-0.csv", "batch-1.csv", "batch-2.csv", "nothing"]
    assert not any(landing.glob("*.csv")) and not any((landing / ".claimed").rglob("*.csv"))
    for run in (f"run-{i}" for i in range(4)):
        manifest = platform_config.workspace / "runs" / run / "ingest.json"
        if manifest.exists():
            copy = Path(pd.read_json(manifest, typ="series")["batch_file"])
            assert copy.read_bytes() == originals[copy.name]  # byte for byte


def test_a_retried_ingest_takes_the_batch_it_had_claimed(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    first = _batch(landing / "first.csv", 1, golden_frame, age_seconds=200)
    _batch(landing / "second.csv", 2, golden_frame, age_seconds=100)
    claim_oldest(landing, "run-1", 0)  # the run died right after claiming
    assert not first.exists()
    ingested = steps.ingest(platform_config, "run-1")
    assert Path(ingested.batch_file).name == "first.csv" and ingested.source == str(
        landing.resolve() / "first.csv"
    )
    assert (landing / "second.csv").exists()  # the next batch is still waiting for the next run
    again = steps.ingest(platform_config, "run-1")  # retried after it finished: the same batch
    assert again == ingested and (landing / "second.csv").exists()


def test_a_named_landing_file_is_claimed_and_a_missing_one_is_a_clear_error(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    carried = _batch(landing / "drift-feedback-abc.csv", 3, golden_frame, age_seconds=0)
    ingested = steps.ingest(platform_config, "drift-run", str(carried))
    assert ingested.claimed_from_landing and not carried.exists()
    with pytest.raises(FileNotFoundError, match="does not exist; check data_path"):
        steps.ingest(platform_config, "other-run", str(landing / "never-there.csv"))
