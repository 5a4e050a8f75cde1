"""Row-level quarantine: a batch with a few bad rows goes on without them; one with many does not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bertloop.core.config import PlatformConfig, load_config
from bertloop.pipeline import steps
from tests.conftest import synthetic_rows


@pytest.fixture
def lenient(config_file: Path) -> PlatformConfig:
    return load_config(config_file, overrides={"validation.max_bad_row_share": 0.05}, environ={})


def _batch(golden: pd.DataFrame) -> pd.DataFrame:
    clean = synthetic_rows(40, seed=21, exclude=set(golden["text"]))  # 120 rows
    extra = pd.DataFrame(
        {
            "text": [
                golden["text"].iloc[0].upper() + "!",  # leaked, re-formatted
                clean["text"].iloc[5],  # an exact repeat of row 5: collapsed, not bad
                "the referee spoke to the minister",  # the same text under two labels: both bad
                "the referee spoke to the minister",
            ],
            "label": ["sport", clean["label"].iloc[5], "sport", "politics"],
        }
    )
    return pd.concat([clean, extra], ignore_index=True)


def test_a_few_bad_rows_are_split_off_with_reasons_and_the_rest_is_trained_on(
    tmp_path: Path, lenient: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    (tmp_path / "incoming").mkdir()
    source = tmp_path / "incoming" / "public.csv"
    _batch(golden_frame).to_csv(source, index=False)
    original = source.read_bytes()
    ingested = steps.ingest(lenient, "run-1", str(source))
    validated = steps.validate(lenient, "run-1")

    assert (validated.dropped_rows, validated.collapsed_repeats) == (3, 1)
    rows = pd.read_csv(validated.rows_report)
    assert rows["row"].tolist() == [120, 122, 123]
    assert rows["reason"].tolist() == [
        "leaked: the text is in the golden set",
        "conflicting labels: the same text is labelled ['politics', 'sport']",
        "conflicting labels: the same text is labelled ['politics', 'sport']",
    ]
    folder = Path(validated.rows_report).parent
    assert "3 rows dropped (2.4% of the batch), 1 exact repeats collapsed" in (folder / "rows.md").read_text()
    assert not (folder / "report.json").exists()  # not a rejected batch: a rerun still passes
    assert Path(ingested.batch_file).read_bytes() == original  # the original, byte for byte
    accepted = pd.read_parquet(validated.accepted_file)
    assert len(accepted) == 120 and "the referee spoke to the minister" not in set(accepted["text"])

    versioned = steps.version(lenient, "run-1")
    assert versioned.batch_path.endswith(".parquet")  # what was accepted is what is versioned
    trained_on = pd.read_parquet(Path(versioned.data_repo) / versioned.batch_path)
    assert trained_on.equals(accepted)


def test_too_many_bad_rows_reject_the_whole_batch_with_every_row_listed(
    tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    assert platform_config.validation.on_bad_rows == "drop_rows"  # the default
    (tmp_path / "incoming").mkdir()
    source = tmp_path / "incoming" / "broken.csv"
    _batch(golden_frame).to_csv(source, index=False)  # 3 bad rows of 124: 2.4%, over the default 2%
    original = source.read_bytes()
    steps.ingest(platform_config, "run-1", str(source))
    with pytest.raises(steps.BatchRejected) as rejected:
        steps.validate(platform_config, "run-1")
    (problem,) = rejected.value.failures
    assert problem.startswith("3 of 124 rows (2.4%) fail row-level checks, more than")
    assert "validation.max_bad_row_share=2.0%" in problem and "e.g. row 120: leaked" in problem
    folder = rejected.value.folder
    assert (folder / "broken.csv").read_bytes() == original
    assert len(pd.read_csv(folder / "rows.csv")) == 3


def test_exact_repeats_alone_are_not_bad_rows(
    tmp_path: Path, platform_config: PlatformConfig, golden_frame: pd.DataFrame
) -> None:
    clean = synthetic_rows(10, seed=22, exclude=set(golden_frame["text"]))
    repeated = pd.concat([clean, clean.head(8)], ignore_index=True)  # 8 of 38 rows repeated: 21%
    (tmp_path / "incoming").mkdir()
    source = tmp_path / "incoming" / "repeats.csv"
    repeated.to_csv(source, index=False)
    steps.ingest(platform_config, "run-1", str(source))
    validated = steps.validate(platform_config, "run-1")
    assert (validated.dropped_rows, validated.collapsed_repeats) == (0, 8)
    assert len(pd.read_parquet(validated.accepted_file)) == 30
