"""Every kind of bad batch is quarantined with a clear message, and the original is kept byte for byte."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core.config import PlatformConfig
from bertloop.core.workspace import StepNotRun
from bertloop.pipeline import steps
from tests.conftest import synthetic_rows


def _fresh(golden: pd.DataFrame, per_class: int = 6) -> pd.DataFrame:
    return synthetic_rows(per_class, seed=7, exclude=set(golden["text"]))


def empty_file(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    path.write_bytes(b"")
    return path


def wrong_columns(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    _fresh(golden).rename(columns={"text": "body", "label": "category"}).to_csv(path, index=False)
    return path


def null_texts(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[[0, 3], "text"] = None
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def blank_texts(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[[1, 2], "text"] = "   "
    path = path.with_suffix(".jsonl")
    frame.to_json(path, orient="records", lines=True)
    return path


def unknown_labels(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[[0, 1], "label"] = "weather"
    path = path.with_suffix(".parquet")
    frame.to_parquet(path)
    return path


def invalid_utf8(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    path.write_bytes(_fresh(golden).to_csv(index=False).encode() + b"caf\xe9 au lait,sport\n")
    return path


def oversized_texts(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[0, "text"] = "goal " * 10_000
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def single_class(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame = frame[frame["label"] == "sport"]
    frame = pd.concat([frame, synthetic_rows(12, seed=8, exclude=set(golden["text"]))])
    frame = frame[frame["label"] == "sport"].drop_duplicates("text")
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def duplicates(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame = pd.concat([frame, frame.head(6).assign(text=lambda f: f["text"].str.upper())])
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def golden_overlap(path: Path, golden: pd.DataFrame) -> Path:
    frame = pd.concat([_fresh(golden), golden.head(2)])
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def corrupt_parquet(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".parquet")
    _fresh(golden).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-file, as an interrupted upload
    return path


def too_few_rows(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    _fresh(golden, per_class=3).head(9).to_csv(path, index=False)
    return path


def too_few_per_class(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden, per_class=8)
    frame = pd.concat([frame[frame["label"] != "tech"], frame[frame["label"] == "tech"].head(2)])
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False)
    return path


def malformed_jsonl(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".jsonl")
    path.write_text(_fresh(golden).to_json(orient="records", lines=True) + '{"text": "cut off\n')
    return path


def unsupported_type(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".xlsx")
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    return path


def binary_texts_parquet(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame["text"] = frame["text"].str.encode("utf-8")  # a bytes column, not strings
    path = path.with_suffix(".parquet")
    frame.to_parquet(path)
    return path


def _jsonl_with_text(value: object) -> Callable[[Path, pd.DataFrame], Path]:
    def make(path: Path, golden: pd.DataFrame) -> Path:
        records = _fresh(golden).to_dict(orient="records")
        records[2]["text"] = value
        path = path.with_suffix(".jsonl")
        path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
        return path

    return make


def nul_in_text(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[1, "text"] = "the match ended\x00 and the rest is lost"
    path = path.with_suffix(".jsonl")
    frame.to_json(path, orient="records", lines=True)
    return path


def invisible_texts(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame.loc[[1, 2], "text"] = ["\u200b\u200b\u200b", "\ufeff \u2060"]
    path = path.with_suffix(".jsonl")
    frame.to_json(path, orient="records", lines=True)
    return path


CASES: dict[str, tuple[Callable[[Path, pd.DataFrame], Path], str, bool]] = {
    # name: (make the file, words the message must contain, whether GX ran on it)
    "empty file": (empty_file, "the file is empty", False),
    "wrong columns": (wrong_columns, "required column 'text' is missing", True),
    "null texts": (null_texts, "2 rows have no value in 'text'", True),
    "blank texts": (blank_texts, "2 rows have blank text", True),
    "unknown labels": (unknown_labels, "labels outside the known label set, e.g. ['weather']", True),
    "invalid utf-8": (invalid_utf8, "not valid UTF-8", False),
    "oversized texts": (oversized_texts, "1 texts are outside the allowed length", True),
    "single class": (single_class, "1 distinct label(s)", True),
    "duplicates": (duplicates, "of texts are duplicates", True),
    "golden-set overlap": (golden_overlap, "2 texts also appear in the golden set (leakage)", True),
    "corrupt parquet": (corrupt_parquet, "not a readable Parquet file", False),
    "too few rows": (too_few_rows, "the batch has 9 rows; at least 12 are required", True),
    "too few per class": (too_few_per_class, "classes with fewer than 3 examples: {'tech': 2}", True),
    "malformed jsonl": (malformed_jsonl, "is not valid JSON", False),
    "unsupported type": (unsupported_type, "unsupported file type '.xlsx'", False),
    "binary texts": (binary_texts_parquet, "row 0: the text is binary, not a string", False),
    "number text": (_jsonl_with_text(12345), "row 2: the text is a number, not a string", False),
    "boolean text": (_jsonl_with_text(True), "row 2: the text is a boolean, not a string", False),
    "list text": (_jsonl_with_text(["What", "a", "goal"]), "row 2: the text is a list", False),
    "object text": (_jsonl_with_text({"body": "goal"}), "row 2: the text is an object", False),
    "invisible texts": (invisible_texts, "2 rows have blank text", True),
    "nul in text": (nul_in_text, "row 1: the text holds the control character U+0000", False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_batch_is_quarantined(
    case: str, tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    make, expected, validated = CASES[case]
    (tmp_path / "incoming").mkdir()
    source = make(tmp_path / "incoming" / "batch", golden_frame)
    original = source.read_bytes()

    steps.ingest(platform_config, "run-1", str(source))
    with pytest.raises(steps.BatchRejected) as rejected:
        steps.validate(platform_config, "run-1")

    message = str(rejected.value)
    assert expected in message
    assert "moved to" in message and "Fix the file and send it again" in message
    assert source.read_bytes() == original  # the sender's file is untouched
    folder = rejected.value.folder
    assert (folder / source.name).read_bytes() == original  # and quarantined byte for byte
    report = json.loads((folder / "report.json").read_text())
    assert any(expected in failure for failure in report["failures"])
    assert expected in (folder / "report.md").read_text()
    assert (folder / "gx_validation_result.json").is_file() == validated
    assert (folder / "data_docs" / "index.html").is_file() == validated
    page = (folder / "report.html").read_text()
    assert html.escape(expected) in page and "http" not in page  # self-contained: renders offline
    if case == "golden-set overlap":  # the offending rows, never the whole golden set
        assert len(page) < 20_000 and sum(text in page for text in golden_frame["text"]) <= 5
    # Never versioned, never trained on.
    assert not (platform_config.workspace / "runs" / "run-1" / "validate.json").exists()
    with pytest.raises(StepNotRun, match="has not completed"):
        steps.version(platform_config, "run-1")


def test_a_quarantined_batch_stays_rejected_on_rerun(
    tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    (tmp_path / "incoming").mkdir()
    source = null_texts(tmp_path / "incoming" / "batch", golden_frame)
    steps.ingest(platform_config, "run-1", str(source))
    with pytest.raises(steps.BatchRejected):
        steps.validate(platform_config, "run-1")
    with pytest.raises(steps.BatchRejected, match="rows have no value"):
        steps.validate(platform_config, "run-1")


def test_batch_from_landing_is_claimed_and_quarantined_intact(
    platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    landing = platform_config.data.landing_dir
    landing.mkdir(parents=True)
    source = unknown_labels(landing / "incoming", golden_frame)
    original = source.read_bytes()
    batch = steps.ingest(platform_config, "run-1")  # no path: the oldest file waiting
    assert batch.claimed_from_landing and not source.exists()
    with pytest.raises(steps.BatchRejected) as rejected:
        steps.validate(platform_config, "run-1")
    assert (rejected.value.folder / source.name).read_bytes() == original


def test_empty_landing_folder_says_so(platform_config: PlatformConfig) -> None:
    with pytest.raises(steps.NoBatchWaiting, match="no batch waiting"):
        steps.ingest(platform_config, "run-1")


def test_missing_file_is_a_clear_error(tmp_path: Path, platform_config: PlatformConfig) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; check data_path"):
        steps.ingest(platform_config, "run-1", str(tmp_path / "nope.csv"))
