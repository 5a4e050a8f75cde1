"""Read a labelled batch (CSV, JSONL or Parquet) into a DataFrame of strings.

Reading never repairs anything: a file that cannot be read exactly as written
raises :class:`UnreadableBatch` with a reason a person can act on.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

SUPPORTED_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class UnreadableBatch(ValueError):
    """The batch file cannot be parsed; the message says why and what to fix."""


def batch_format(path: Path) -> str:
    try:
        return SUPPORTED_SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise UnreadableBatch(
            f"{path.name}: unsupported file type '{path.suffix}'; "
            f"send one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        ) from None


def read_batch(path: Path, delimiter: str = ",", text_column: str | None = None) -> pd.DataFrame:
    """Return the batch with every non-null cell as ``str`` (labels like 1 and '1' agree).

    When ``text_column`` is given, its cells must already be strings without control
    characters: a binary, number, list or object text would otherwise be trained on as its
    ``str()`` (``"b'...'"``, ``"True"``), and a NUL byte cuts a text short downstream.
    """
    fmt = batch_format(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableBatch(f"{path.name}: the file is empty; send a file with a header and rows")
    if fmt == "parquet":
        frame = _read_parquet(path, raw)
    else:
        text = _decode_utf8(path, raw)
        frame = _read_csv(path, text, delimiter) if fmt == "csv" else _read_jsonl(path, text)
    if text_column is not None and text_column in frame.columns:
        _check_texts(path, frame[text_column])
    return (
        frame.astype(object)
        .where(frame.notna(), None)
        .map(lambda value: value if value is None else str(value))
    )


# C0 controls except tab, newline and carriage return, DEL, and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _check_texts(path: Path, texts: pd.Series) -> None:
    for row, value in texts.items():
        if value is None or (isinstance(value, float) and pd.isna(value)):
            continue  # missing texts are the suite's to report, with their rows
        if not isinstance(value, str):
            raise UnreadableBatch(
                f"{path.name}: row {row}: the text is {_type_name(value)}, not a string; "
                "send every text as a string"
            )
        control = _CONTROL.search(value)
        if control is not None:
            raise UnreadableBatch(
                f"{path.name}: row {row}: the text holds the control character "
                f"U+{ord(control.group()):04X}; remove control characters (such as NUL) from texts"
            )


def _type_name(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return "binary"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple) or hasattr(value, "__array__"):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _decode_utf8(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UnreadableBatch(
            f"{path.name}: not valid UTF-8 (byte {error.start}, line {line}: "
            f"{raw[error.start : error.start + 4]!r}); re-export the file as UTF-8"
        ) from None


def _read_csv(path: Path, text: str, delimiter: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_values=[""]
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UnreadableBatch(f"{path.name}: not a well-formed CSV file ({error})") from None
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UnreadableBatch(
                f"{path.name}: line {number} is not valid JSON ({error.msg}); "
                "JSONL needs one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise UnreadableBatch(f"{path.name}: line {number} is not a JSON object")
        records.append(record)
    return pd.DataFrame.from_records(records)


def _read_parquet(path: Path, raw: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(raw)).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise UnreadableBatch(f"{path.name}: not a readable Parquet file ({error}); re-export it") from None
