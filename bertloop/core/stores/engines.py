"""One SQLAlchemy engine per database URL per process, shared by every store that lives there.

The ledger and the drift history share a SQLite file by default; the gateway,
the canary controller and a drift check each open a database once and reuse the
connection pool instead of building an engine per call.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """The process's engine for ``url`` (``postgresql://`` URLs use psycopg2)."""
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def dispose_all() -> None:
    """Close every pooled connection (tests and shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _create(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # WAL lets the canary controller and drift checks read while the gateway writes.
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine
