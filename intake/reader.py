"""Read a labelled batch (CSV, JSONL or Parquet) into a DataFrame of strings.

Reading never repairs anything: a file that cannot be read exactly as written
raises :class:`UnreadableBatch` with a reason a person can act on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd

SUPPORTED_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
# Bounds on what one cell and one JSON record may hold: a batch of labelled texts never needs
# more, and without them a hostile file exhausts memory or the parser's recursion.
MAX_FIELD_CHARS = 1_000_000
MAX_JSON_DEPTH = 32
_COMPRESSED = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive", b"BZh": "bzip2-compressed"}
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


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
    try:
        frame = _read(path, fmt, delimiter)
        _check_columns(path, frame)
        if text_column is not None and text_column in frame.columns:
            _check_texts(path, frame[text_column])
        _check_field_sizes(path, frame)
    except UnreadableBatch:
        raise
    except (Exception, RecursionError) as error:  # no traceback ever: the batch is quarantined with this
        raise UnreadableBatch(
            f"{path.name}: could not be read ({type(error).__name__}: {str(error)[:200]}); re-export it as "
            "UTF-8 CSV, JSONL or Parquet with one text and one label per row"
        ) from None
    return (
        frame.astype(object)
        .where(frame.notna(), None)
        .map(lambda value: value if value is None else str(value))
    )


def _read(path: Path, fmt: str, delimiter: str) -> pd.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableBatch(f"{path.name}: the file is empty; send a file with a header and rows")
    for magic, what in _COMPRESSED.items():
        if fmt != "parquet" and raw.startswith(magic):
            raise UnreadableBatch(
                f"{path.name}: the file is {what}; decompress it and send the plain {path.suffix} file"
            )
    if fmt == "parquet":
        return _read_parquet(path, raw)
    text = _decode_utf8(path, raw)
    return _read_csv(path, text, delimiter) if fmt == "csv" else _read_jsonl(path, text)


def _check_columns(path: Path, frame: pd.DataFrame) -> None:
    names = [str(name) for name in frame.columns]
    padded = [name for name in names if name != name.strip()]
    if padded:
        fixes = ", ".join(f"{name!r} to {name.strip()!r}" for name in padded)
        raise UnreadableBatch(f"{path.name}: column names have spaces around them; rename {fixes}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UnreadableBatch(
            f"{path.name}: columns {repeated} appear more than once; keep exactly one of each"
        )


def _check_field_sizes(path: Path, frame: pd.DataFrame) -> None:
    for column in frame.columns:
        lengths = frame[column].map(lambda value: len(value) if isinstance(value, str | bytes) else 0)
        if len(lengths) and lengths.max() > MAX_FIELD_CHARS:
            row = int(lengths.to_numpy().argmax())
            raise UnreadableBatch(
                f"{path.name}: row {row}, column {column!r} holds {int(lengths.max()):,} characters; "
                f"no field may exceed {MAX_FIELD_CHARS:,}"
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
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=delimiter), [])
    hint = _delimiter_hint(text, delimiter)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:  # pandas would rename the second one "label.1" and use the first silently
        raise UnreadableBatch(
            f"{path.name}: columns {repeated} appear more than once; keep exactly one of each"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_values=[""]
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UnreadableBatch(f"{path.name}: not a well-formed CSV file ({error}){hint}") from None
    if len(frame.columns) == 1 and hint:
        raise UnreadableBatch(f"{path.name}: the header has one column, {frame.columns[0][:80]!r}{hint}")
    return frame


def _delimiter_hint(text: str, delimiter: str) -> str:
    """ "; it looks semicolon-delimited: set data.csv_delimiter to ';'" when another delimiter fits better."""
    header = text.split("\n", 1)[0]
    counts = {other: header.count(other) for other in _OTHER_DELIMITERS if other != delimiter}
    best = max(counts, key=counts.__getitem__, default=None)
    if best is None or counts[best] == 0 or counts[best] <= header.count(delimiter):
        return ""
    return f"; it looks {_OTHER_DELIMITERS[best]}-delimited: set data.csv_delimiter to {best!r}"


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_refuse_repeated_keys)
        except RepeatedKey as error:
            raise UnreadableBatch(
                f"{path.name}: line {number} has the key {error.args[0]!r} more than once; keep exactly one"
            ) from None
        except RecursionError:
            raise UnreadableBatch(
                f"{path.name}: line {number} is nested too deeply to read; "
                f"records may nest at most {MAX_JSON_DEPTH} levels"
            ) from None
        except json.JSONDecodeError as error:
            raise UnreadableBatch(
                f"{path.name}: line {number} is not valid JSON ({error.msg}); "
                "JSONL needs one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise UnreadableBatch(f"{path.name}: line {number} is not a JSON object")
        if _depth(record) > MAX_JSON_DEPTH:
            raise UnreadableBatch(
                f"{path.name}: line {number} nests more than {MAX_JSON_DEPTH} levels; "
                "send flat records of a text and a label"
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


class RepeatedKey(ValueError):
    pass


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise RepeatedKey(key)
        record[key] = value
    return record


def _depth(value: object, level: int = 1) -> int:
    """Nesting depth, stopping as soon as it passes the bound (so it never recurses far itself)."""
    if level > MAX_JSON_DEPTH or not isinstance(value, dict | list):
        return level
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, level + 1) for child in children), default=level)


def _read_parquet(path: Path, raw: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(io.BytesIO(raw)).names
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise UnreadableBatch(
                f"{path.name}: columns {repeated} appear more than once; keep exactly one of each"
            )
        return pq.read_table(io.BytesIO(raw)).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise UnreadableBatch(f"{path.name}: not a readable Parquet file ({error}); re-export it") from None
