"""The promotion ledger: every alias change, appended and never rewritten. The only code that opens it.

The database itself refuses UPDATE and DELETE on the table (a trigger on SQLite
and on PostgreSQL), so not even a bug in this code can rewrite history.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bertloop.core.stores.engines import open_tables

metadata = sa.MetaData()
ledger = sa.Table(
    "promotion_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(64), nullable=True),
    sa.Column("from_version", sa.String(32), nullable=True),
    sa.Column("to_version", sa.String(32), nullable=True),
    sa.Column("evidence", sa.Text, nullable=False),
)

_GUARDS = {
    "sqlite": [
        """CREATE TRIGGER IF NOT EXISTS promotion_ledger_no_update BEFORE UPDATE ON promotion_ledger
           BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END""",
        """CREATE TRIGGER IF NOT EXISTS promotion_ledger_no_delete BEFORE DELETE ON promotion_ledger
           BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END""",
    ],
    "postgresql": [
        """CREATE OR REPLACE FUNCTION promotion_ledger_append_only() RETURNS trigger AS $$
           BEGIN RAISE EXCEPTION 'the promotion ledger is append-only'; END; $$ LANGUAGE plpgsql""",
        """CREATE OR REPLACE TRIGGER promotion_ledger_no_rewrite BEFORE UPDATE OR DELETE ON promotion_ledger
           FOR EACH ROW EXECUTE FUNCTION promotion_ledger_append_only()""",
    ],
}


@dataclass(frozen=True)
class LedgerEntry:
    ts: float
    actor: str
    action: str
    model_name: str
    alias: str | None
    from_version: str | None
    to_version: str | None
    evidence: dict[str, Any]


class Ledger:
    def __init__(self, url: str):
        self.engine = open_tables(url, metadata, _GUARDS)

    def append(
        self,
        actor: str,
        action: str,
        model_name: str,
        alias: str | None = None,
        from_version: str | None = None,
        to_version: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                ledger.insert().values(
                    ts=time.time(),
                    actor=actor,
                    action=action,
                    model_name=model_name,
                    alias=alias,
                    from_version=from_version,
                    to_version=to_version,
                    evidence=json.dumps(evidence or {}, sort_keys=True, default=str),
                )
            )

    def entries(self, model_name: str | None = None) -> list[LedgerEntry]:
        query = sa.select(ledger).order_by(ledger.c.id)
        if model_name:
            query = query.where(ledger.c.model_name == model_name)
        with self.engine.connect() as connection:
            return [
                LedgerEntry(
                    ts=row.ts,
                    actor=row.actor,
                    action=row.action,
                    model_name=row.model_name,
                    alias=row.alias,
                    from_version=row.from_version,
                    to_version=row.to_version,
                    evidence=json.loads(row.evidence),
                )
                for row in connection.execute(query)
            ]

    def alias_set_at(self, model_name: str, alias: str, version: str) -> float | None:
        """When ``alias`` last moved to ``version`` (the champion's promotion, say); None if never."""
        query = (
            sa.select(ledger.c.ts)
            .where(ledger.c.model_name == model_name, ledger.c.alias == alias, ledger.c.to_version == version)
            .order_by(ledger.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return float(row.ts) if row else None


BATCH_SUSPECT = "batch_suspect"
BATCH_READMITTED = "batch_readmitted"


def suspect_batches(entries: list[LedgerEntry]) -> dict[str, LedgerEntry]:
    """Batches marked suspect (their model was not blessed) and not re-admitted since, by batch id."""
    suspects: dict[str, LedgerEntry] = {}
    for entry in entries:
        batch = str(entry.evidence.get("batch_id", ""))
        if entry.action == BATCH_SUSPECT and batch:
            suspects[batch] = entry
        elif entry.action == BATCH_READMITTED:
            suspects.pop(batch, None)
    return suspects


def format_entries(entries: list[LedgerEntry]) -> str:
    if not entries:
        return "(the ledger is empty)"
    lines = []
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.ts))
        change = (
            f"{entry.alias}: {entry.from_version or '-'} -> {entry.to_version or '-'}" if entry.alias else ""
        )
        summary = entry.evidence.get("summary", "")
        lines.append(f"{when}Z  {entry.action:<18} {change:<28} by {entry.actor}  {summary}".rstrip())
    return "\n".join(lines)
