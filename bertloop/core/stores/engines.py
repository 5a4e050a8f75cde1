"""One SQLAlchemy engine per database URL per process, shared by every store that lives there.

The ledger and the drift history share a SQLite file by default; the gateway,
the canary controller and a drift check each open a database once and reuse the
connection pool instead of building an engine per call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

_engines: dict[str, sa.Engine] = {}
_ready: set[tuple[str, int]] = set()  # (database, metadata) whose tables exist
_migrated: set[tuple[str, int]] = set()  # (database, table) whose missing columns were added
_lock = threading.RLock()


def engine_for(url: str) -> sa.Engine:
    """The process's engine for ``url`` (``postgresql://`` URLs use psycopg2)."""
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def open_tables(
    url: str, metadata: sa.MetaData, setup: Mapping[str, Sequence[str]] | None = None
) -> sa.Engine:
    """The engine for ``url`` with ``metadata``'s tables created once per process, and then the
    statements ``setup`` gives for the database's dialect (triggers, say) run once.

    A SQLite file is created readable by its owner only (0600), before SQLite opens it: its WAL and
    shared-memory files take the same mode. Predictions hold people's texts.
    """
    engine = engine_for(url)
    key = (str(engine.url), id(metadata))
    with _lock:
        if key in _ready:
            return engine
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            path = Path(str(engine.url.database))
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        metadata.create_all(engine)
        with engine.begin() as connection:
            for statement in (setup or {}).get(engine.dialect.name, ()):
                connection.execute(sa.text(statement))
        _ready.add(key)
    return engine


def add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Add ``table``'s nullable columns that an older database lacks (``create_all`` leaves an existing
    table as it is); once per engine and table."""
    key = (str(engine.url), id(table))
    with _lock:
        if key in _migrated:
            return
        present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
        with engine.begin() as connection:
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    connection.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
        _migrated.add(key)


def dispose_all() -> None:
    """Close every pooled connection (tests and shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _ready.clear()
        _migrated.clear()


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
