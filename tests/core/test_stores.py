"""The stores' shared opening: one engine per database, tables once, files only their owner can read."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bertloop.core.stores import engines
from bertloop.core.stores.ledger import Ledger
from bertloop.core.stores.predictions import PredictionLog, PredictionRow, open_store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_prediction_log_and_its_wal_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"
    log = PredictionLog(url)
    log.record(
        [PredictionRow("r1", time.time(), "c", "1", "champion", "ok", 1.0, "sport", 0.9, text="a text")]
    )
    log.flush()
    files = sorted((tmp_path / "logs").iterdir())
    assert {path.name for path in files} >= {"predictions.db", "predictions.db-wal"}
    assert all(_mode(path) == 0o600 for path in files), {path.name: oct(_mode(path)) for path in files}
    log.close()


def test_one_engine_per_database_and_tables_created_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert open_store(url) is open_store(url) is engines.engine_for(url)
    assert "predictions" in sa.inspect(open_store(url)).get_table_names()


def test_the_ledger_stays_append_only_through_the_shared_opening(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.append("test", "register", "model", "champion", None, "1")
    again = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")  # a second opener in the same process
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), again.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM promotion_ledger"))
    assert len(again.entries()) == 1
