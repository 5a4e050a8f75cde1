"""The drift history: one row per drift check, the timeline of scores, accuracy and verdicts.

The only code that opens the ``drift_checks`` table. It lives in the same
database as the promotion ledger (``canary.ledger_url``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from bertloop.core.stores.engines import add_missing_columns, open_tables

metadata = sa.MetaData()
drift_checks = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("champion", sa.String(32), nullable=True),
    sa.Column("window_size", sa.Integer, nullable=False),
    sa.Column("drift_score", sa.Float, nullable=True),
    sa.Column("live_accuracy", sa.Float, nullable=True),
    sa.Column("confirmed", sa.Boolean, nullable=False),
    sa.Column("triggered", sa.Boolean, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("report", sa.Text, nullable=True),
    sa.Column("level", sa.String(16), nullable=True),  # none, warning, confirmed; null on older rows
    sa.Column("reference", sa.Text, nullable=True),  # what the window was compared with
)


class CheckRecord(BaseModel):
    """What the timeline keeps of one check."""

    model_config = ConfigDict(frozen=True)

    ts: float
    champion: str | None
    window_size: int
    drift_score: float | None
    live_accuracy: float | None
    confirmed: bool
    triggered: bool
    snapshot: str | None
    reason: str
    report: str | None
    level: str = "none"
    reference: str | None = None


@dataclass(frozen=True)
class LastTrigger:
    ts: float
    snapshot: str | None


class DriftHistory:
    def __init__(self, url: str):
        self.engine = open_tables(url, metadata)
        add_missing_columns(self.engine, drift_checks)  # a history written before a column existed

    def append(self, record: CheckRecord) -> None:
        with self.engine.begin() as connection:
            columns = set(drift_checks.columns.keys())
            connection.execute(drift_checks.insert().values(**record.model_dump(include=columns)))

    def last_trigger(self) -> LastTrigger | None:
        """The newest check that started a retrain, for storm control."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(drift_checks.c.ts, drift_checks.c.snapshot)
                .where(drift_checks.c.triggered.is_(True))
                .order_by(drift_checks.c.id.desc())
                .limit(1)
            ).first()
        return LastTrigger(row.ts, row.snapshot) if row else None

    def timeline(self) -> pd.DataFrame:
        """Every check, oldest first."""
        with self.engine.connect() as connection:
            rows: list[Any] = list(
                connection.execute(sa.select(drift_checks).order_by(drift_checks.c.id)).mappings()
            )
        return pd.DataFrame(rows)
