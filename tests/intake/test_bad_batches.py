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


@pytest.fixture
def platform_config(config_file: Path) -> PlatformConfig:
    """Whole-batch rejection, so each kind of bad row is reported by the suite in its own words
    (row-level screening, the default, is tested in test_rows.py)."""
    from bertloop.core.config import load_config

    return load_config(config_file, overrides={"validation.on_bad_rows": "reject_batch"}, environ={})


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


def golden_overlap_reformatted(path: Path, golden: pd.DataFrame) -> Path:
    """Golden texts re-punctuated and re-typed in full-width letters: the same text to a model."""
    first, second = golden["text"].iloc[0], golden["text"].iloc[1]
    repunctuated = first.replace(" ", ", ", 1).capitalize() + "!"
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in second)
    frame = pd.concat(
        [_fresh(golden), pd.DataFrame({"text": [repunctuated, full_width], "label": ["sport"] * 2})]
    )
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


def duplicate_columns_csv(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame["label2"] = frame["label"].iloc[::-1].to_numpy()  # a second label column that disagrees
    path = path.with_suffix(".csv")
    frame.to_csv(path, index=False, header=["text", "label", "label"])
    return path


def duplicate_keys_jsonl(path: Path, golden: pd.DataFrame) -> Path:
    lines = [
        f'{{"text": {json.dumps(text)}, "label": "sport", "label": {json.dumps(label)}}}'
        for text, label in zip(_fresh(golden)["text"], _fresh(golden)["label"], strict=True)
    ]
    path = path.with_suffix(".jsonl")
    path.write_text("\n".join(lines) + "\n")
    return path


def duplicate_columns_parquet(path: Path, golden: pd.DataFrame) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _fresh(golden)
    columns = [pa.array(frame["text"]), pa.array(frame["label"]), pa.array(frame["label"].iloc[::-1])]
    path = path.with_suffix(".parquet")
    pq.write_table(pa.Table.from_arrays(columns, names=["text", "label", "label"]), path)
    return path


def _jsonl_with_extra(extra: str) -> Callable[[Path, pd.DataFrame], Path]:
    def make(path: Path, golden: pd.DataFrame) -> Path:
        lines = _fresh(golden).to_json(orient="records", lines=True).splitlines()
        lines[3] = lines[3][:-1] + f', "extra": {extra}}}'
        path = path.with_suffix(".jsonl")
        path.write_text("\n".join(lines) + "\n")
        return path

    return make


def _csv_with_delimiter(delimiter: str) -> Callable[[Path, pd.DataFrame], Path]:
    def make(path: Path, golden: pd.DataFrame) -> Path:
        path = path.with_suffix(".csv")
        _fresh(golden).to_csv(path, index=False, sep=delimiter)
        return path

    return make


def gzip_named_csv(path: Path, golden: pd.DataFrame) -> Path:
    import gzip

    path = path.with_suffix(".csv")
    path.write_bytes(gzip.compress(_fresh(golden).to_csv(index=False).encode()))
    return path


def spaced_header(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    _fresh(golden).to_csv(path, index=False, header=[" text ", "label"])
    return path


def huge_field(path: Path, golden: pd.DataFrame) -> Path:
    frame = _fresh(golden)
    frame["note"] = ""
    frame.loc[4, "note"] = "x" * 1_100_000
    path = path.with_suffix(".parquet")
    frame.to_parquet(path)
    return path


def header_only(path: Path, golden: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    path.write_text("text,label\n")
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
    "golden-set overlap": (golden_overlap, "2 texts also appear in the golden set (leakage", True),
    "golden overlap reformatted": (
        golden_overlap_reformatted,
        "2 texts also appear in the golden set (leakage, ignoring case, punctuation",
        True,
    ),
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
    "duplicate columns csv": (duplicate_columns_csv, "columns ['label'] appear more than once", False),
    "duplicate keys jsonl": (duplicate_keys_jsonl, "line 1 has the key 'label' more than once", False),
    "duplicate columns parquet": (
        duplicate_columns_parquet,
        "columns ['label'] appear more than once",
        False,
    ),
    "deep nesting": (_jsonl_with_extra("[" * 200_000 + "]" * 200_000), "line 4 is nested too deeply", False),
    "nesting past the bound": (
        _jsonl_with_extra("[" * 40 + "]" * 40),
        "line 4 nests more than 32 levels",
        False,
    ),
    "semicolon csv": (
        _csv_with_delimiter(";"),
        "looks semicolon-delimited: set data.csv_delimiter to ';'",
        False,
    ),
    "tab csv": (_csv_with_delimiter("\t"), "looks tab-delimited: set data.csv_delimiter to '\\t'", False),
    "gzip named csv": (gzip_named_csv, "the file is gzip-compressed; decompress it", False),
    "spaced header": (spaced_header, "rename ' text ' to 'text'", False),
    "huge field": (huge_field, "row 4, column 'note' holds 1,100,000 characters", False),
    "header only": (header_only, "the batch has 0 rows; at least 12 are required", True),
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
    if not validated:  # the reader's cause is the one problem, not buried under "could not run" lines
        assert len(rejected.value.failures) == 1 and "could not run" not in message
    if case in ("empty file", "header only"):  # no rows: nothing can be "100% duplicates"
        assert "duplicate" not in message.lower()
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


def test_missing_columns_are_the_only_problems_reported(
    tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    (tmp_path / "incoming").mkdir()
    source = wrong_columns(tmp_path / "incoming" / "batch", golden_frame)
    steps.ingest(platform_config, "run-1", str(source))
    with pytest.raises(steps.BatchRejected) as rejected:
        steps.validate(platform_config, "run-1")
    failures = json.loads((rejected.value.folder / "report.json").read_text())["failures"]
    # The checks that needed those columns are not listed as problems of their own.
    assert [failure.split(" (found")[0] for failure in failures] == [
        "required column 'text' is missing",
        "required column 'label' is missing",
    ]


def test_near_duplicates_of_golden_texts_are_caught_when_configured(
    tmp_path: Path, config_file: Path, golden_frame: pd.DataFrame
) -> None:
    from bertloop.core.config import load_config

    overrides = {"validation.near_duplicate_threshold": 0.6, "validation.on_bad_rows": "reject_batch"}
    config = load_config(config_file, overrides=overrides, environ={})
    golden_text = golden_frame["text"].iloc[0]
    edited = " ".join([*golden_text.split()[:-1], "yesterday"])  # the last word changed: 5 of 7 trigrams
    frame = pd.concat([_fresh(golden_frame), pd.DataFrame({"text": [edited], "label": ["sport"]})])
    (tmp_path / "incoming").mkdir()
    source = tmp_path / "incoming" / "near.csv"
    frame.to_csv(source, index=False)
    steps.ingest(config, "run-1", str(source))
    with pytest.raises(steps.BatchRejected) as rejected:
        steps.validate(config, "run-1")
    (problem,) = json.loads((rejected.value.folder / "report.json").read_text())["failures"]
    assert problem.startswith(
        "1 texts nearly duplicate a golden-set text (word-trigram Jaccard at least 0.6)"
    )
    assert repr(edited[:60]) in problem and f"row {len(frame) - 1}" in problem  # the batch's row, by number
