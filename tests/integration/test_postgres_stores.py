"""The prediction log and the ledger on the machine's real PostgreSQL, in a database of their own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bertloop.core.stores.ledger import Ledger
from bertloop.core.stores.predictions import PredictionLog, PredictionRow, UnknownRequest

pytestmark = pytest.mark.integration
SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def database() -> Iterator[str]:
    import psycopg2

    name = f"bertloop_test_{secrets.token_hex(4)}"
    admin = psycopg2.connect(f"{SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_prediction_log_and_feedback_on_postgres(database: str) -> None:
    log = PredictionLog(database)
    rows = [
        PredictionRow(request_id=f"r{i}", ts=1.0, caller_hash="c", model_version="1", role="champion",
                      status="ok", latency_ms=3.0, label="sport", confidence=0.7)
        for i in range(500)
    ]  # fmt: skip
    log.record(rows)
    log.add_feedback("r7", "tech", given_by="tester")
    with pytest.raises(UnknownRequest):
        log.add_feedback("missing", "tech", given_by="tester")
    assert log.count() == 500
    log.close()


def test_ledger_is_append_only_on_postgres(database: str) -> None:
    ledger = Ledger(database)
    ledger.append("test", "promote", "model", "champion", "1", "2", {"summary": "ok"})
    with ledger.engine.begin() as connection, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        connection.execute(sa.text("UPDATE promotion_ledger SET to_version = '3'"))
    with ledger.engine.begin() as connection, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        connection.execute(sa.text("DELETE FROM promotion_ledger"))
    assert [entry.to_version for entry in Ledger(database).entries()] == ["2"]
