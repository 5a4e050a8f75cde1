"""Slices of the golden set: length tertiles and categorical columns, with clear refusals."""

import pandas as pd
import pytest

from bertloop.core.config import GateConfig
from evaluation.slices import column_slices, golden_slices, length_slices


def test_length_slices_cut_at_the_golden_sets_tertiles() -> None:
    texts = [" ".join(["w"] * words) for words in range(1, 31)]  # 1 to 30 words
    slices = length_slices(texts)
    assert [len(members) for members in slices.values()] == [10, 10, 10]
    assert list(slices) == [
        "length: short (≤10 words)",
        "length: medium (11–20 words)",
        "length: long (>20 words)",
    ]
    assert sorted(i for members in slices.values() for i in members) == list(range(30))


def test_column_slices_one_per_value_with_missing_as_its_own() -> None:
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "source": ["web", "app", None, "web"]})
    slices = column_slices(frame, ["source"])
    assert {name: list(members) for name, members in slices.items()} == {
        "source=(missing)": [2],
        "source=app": [1],
        "source=web": [0, 3],
    }


def test_a_missing_or_non_categorical_column_is_refused_plainly() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(60)], "id": range(60)})
    with pytest.raises(ValueError, match=r"names \['lang'\], which the golden set lacks"):
        column_slices(frame, ["lang"])
    with pytest.raises(ValueError, match="'id' has 60 distinct values; a slice column must be categorical"):
        column_slices(frame, ["id"])


def test_golden_slices_follow_the_configuration() -> None:
    frame = pd.DataFrame({"text": ["one", "two words", "three words here"], "source": ["x", "y", "x"]})
    assert set(golden_slices(frame, "text", GateConfig(length_slices=False, slice_columns=["source"]))) == {
        "source=x",
        "source=y",
    }
    assert len(golden_slices(frame, "text", GateConfig())) == 3
