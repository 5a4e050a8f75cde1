"""The prediction log and its feedback: the only code that opens or queries these tables.

SQLite by default, PostgreSQL when configured. Each answered or mirrored
prediction may carry the model's mean-pooled sentence embedding, stored as
float16 bytes (2 bytes a dimension: 768 for a 384-dimensional MiniLM), so a
drift check reads the window's embeddings instead of running the encoder again;
rows written before the column existed have none, and the check embeds those. The gateway writes predictions
behind the request through one writer thread in batches, so the hot path never
waits on the database; ``close()`` drains every queued row before returning,
which the gateway calls on shutdown: no prediction is lost. The canary
controller and the drift check read through the query functions below.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from bertloop.core import constants
from bertloop.core.stores.engines import add_missing_columns, open_tables

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("mirror_of", sa.String(64), nullable=True, index=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("caller_hash", sa.String(32), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("label", sa.String(256), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # float16 bytes of the sentence embedding (encode_embedding); added on open to older tables.
    sa.Column("embedding", sa.LargeBinary, nullable=True),
)
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(256), nullable=False),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    # Which API key gave the label (its name, or "anonymous" with keys off): the export checks that no
    # one key dominates a retraining batch. Tables made before the column existed get it on open.
    sa.Column("given_by", sa.String(256), nullable=True),
)
EMBEDDING_DTYPE = np.float16


def encode_embedding(vector: np.ndarray) -> bytes:
    """A sentence embedding as the log keeps it: float16, little-endian bytes."""
    return np.asarray(vector, dtype="<f2").tobytes()


def decode_embedding(stored: bytes) -> np.ndarray:
    return np.frombuffer(stored, dtype="<f2").astype(np.float32)


class UnknownRequest(LookupError):
    pass


class FeedbackExists(ValueError):
    pass


@dataclass(frozen=True)
class PredictionRow:
    request_id: str
    ts: float
    caller_hash: str
    model_version: str
    role: str
    status: str
    latency_ms: float
    label: str | None = None
    confidence: float | None = None
    text: str | None = None
    error: str | None = None
    mirror_of: str | None = None
    embedding: bytes | None = None


def open_store(url: str) -> sa.Engine:
    """The process's engine for the prediction log at ``url``, its tables created (or brought up to
    date) on first use."""
    engine = open_tables(url, metadata)
    add_missing_columns(engine, feedback)
    add_missing_columns(engine, predictions)
    return engine


class PredictionLog:
    def __init__(self, url: str, batch_size: int = 256):
        self.engine = open_store(url)
        self._queue: queue.Queue[PredictionRow | None] = queue.Queue()
        self._batch_size = batch_size
        self._writer = threading.Thread(target=self._write_loop, name="prediction-log-writer", daemon=True)
        self._failure: BaseException | None = None
        self._writer.start()

    def record(self, rows: Iterable[PredictionRow]) -> None:
        if self._failure is not None:
            raise RuntimeError("the prediction log writer failed") from self._failure
        for row in rows:
            self._queue.put(row)

    @property
    def failure(self) -> str | None:
        """Why the writer stopped writing, or None while it works."""
        return None if self._failure is None else f"{type(self._failure).__name__}: {self._failure}"

    def flush(self) -> None:
        """Block until every row recorded so far is in the database."""
        self._queue.join()
        if self._failure is not None:
            raise RuntimeError("the prediction log writer failed") from self._failure

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join()

    def add_feedback(self, request_id: str, label: str, given_by: str, now: float | None = None) -> None:
        self.flush()  # the prediction may still be queued
        with self.engine.begin() as connection:
            known = connection.execute(
                sa.select(predictions.c.request_id).where(predictions.c.request_id == request_id)
            ).first()
            if known is None:
                raise UnknownRequest(f"no prediction with request_id {request_id!r}")
            exists = connection.execute(
                sa.select(feedback.c.request_id).where(feedback.c.request_id == request_id)
            ).first()
            if exists is not None:
                raise FeedbackExists(f"feedback for {request_id!r} is already recorded")
            connection.execute(
                feedback.insert().values(
                    request_id=request_id, label=label, ts=now or time.time(), given_by=given_by
                )
            )

    def delete_older_than(self, cutoff: float) -> tuple[int, int]:
        """Delete predictions and feedback from before ``cutoff``: (predictions, feedback) deleted."""
        self.flush()
        with self.engine.begin() as connection:
            removed_feedback = connection.execute(feedback.delete().where(feedback.c.ts < cutoff)).rowcount
            removed = connection.execute(predictions.delete().where(predictions.c.ts < cutoff)).rowcount
        return int(removed), int(removed_feedback)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one())

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch: list[PredictionRow] = []
            item = self._queue.get()
            taken = 1
            if item is None:
                stop = True
            else:
                batch.append(item)
            while not stop and len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            try:
                if batch:
                    self._insert(batch)
            except BaseException as error:  # kept and raised to callers; the rows stay counted
                self._failure = error
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _insert(self, rows: list[PredictionRow]) -> None:
        for attempt in range(5):
            try:
                with self.engine.begin() as connection:
                    connection.execute(predictions.insert(), [asdict(row) for row in rows])
                return
            except sa.exc.OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * 2**attempt)


def rows_since(url: str, since: float, versions: Iterable[str]) -> list[Mapping[str, Any]]:
    """Prediction rows of the given model versions since ``since``, with feedback joined."""
    primary_feedback = feedback.alias("primary_feedback")
    mirrored_feedback = feedback.alias("mirrored_feedback")
    query = (
        sa.select(
            predictions,
            sa.func.coalesce(primary_feedback.c.label, mirrored_feedback.c.label).label("true_label"),
        )
        .outerjoin(primary_feedback, primary_feedback.c.request_id == predictions.c.request_id)
        .outerjoin(mirrored_feedback, mirrored_feedback.c.request_id == predictions.c.mirror_of)
        .where(predictions.c.ts >= since, predictions.c.model_version.in_(list(versions)))
    )
    with open_store(url).connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def answered_rows(url: str, model_version: str, start: float, end: float) -> list[dict[str, Any]]:
    """What ``model_version`` answered between ``start`` and ``end`` (no mirrored copies), with feedback."""
    query = (
        sa.select(predictions, feedback.c.label.label("true_label"))
        .outerjoin(feedback, feedback.c.request_id == predictions.c.request_id)
        .where(
            predictions.c.ts >= start,
            predictions.c.ts < end,
            predictions.c.model_version == model_version,
            predictions.c.role != constants.ROLE_SHADOW,
            predictions.c.status == "ok",
        )
        .order_by(predictions.c.ts)
    )
    with open_store(url).connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


@dataclass(frozen=True)
class LabelledText:
    """A text with the label feedback gave it, who gave it, and what the answering model said."""

    request_id: str
    text: str
    label: str
    given_by: str | None
    predicted: str | None
    confidence: float | None
    role: str


def labelled_texts_since(url: str, since: float) -> list[LabelledText]:
    """Feedback given since ``since`` on predictions that kept their text, oldest request id first."""
    query = (
        sa.select(
            predictions.c.request_id,
            predictions.c.text,
            feedback.c.label,
            feedback.c.given_by,
            predictions.c.label.label("predicted"),
            predictions.c.confidence,
            predictions.c.role,
        )
        .join(feedback, feedback.c.request_id == predictions.c.request_id)
        .where(feedback.c.ts >= since, predictions.c.text.is_not(None))
        .order_by(predictions.c.request_id)
    )
    with open_store(url).connect() as connection:
        return [LabelledText(**row._mapping) for row in connection.execute(query)]


def answered_request_ids(url: str) -> set[str]:
    """Request ids of every answered prediction (mirrored copies left out): to check none went unlogged."""
    query = sa.select(predictions.c.request_id).where(predictions.c.role != constants.ROLE_SHADOW)
    with open_store(url).connect() as connection:
        return {row.request_id for row in connection.execute(query)}
