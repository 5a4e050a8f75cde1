"""Normalisation and near-duplicate scores behind the golden-set leakage checks."""

import pytest

from intake.leakage import GoldenIndex, normalize_text, shingles


@pytest.mark.parametrize(
    "variant",
    [
        "The striker scored, again!",
        "the striker scored again",
        "THE   STRIKER  SCORED AGAIN.",
        "ｔｈｅ ｓｔｒｉｋｅｒ ｓｃｏｒｅｄ ａｇａｉｎ",  # full-width letters
        "the striker—scored… again?",
    ],
)
def test_formatting_does_not_hide_a_text(variant: str) -> None:
    assert normalize_text(variant) == normalize_text("the striker scored again") == "thestrikerscoredagain"


def test_texts_of_only_punctuation_stay_distinct() -> None:
    assert normalize_text("!!!") != normalize_text("???")


def test_nearest_golden_similarity_is_the_trigram_jaccard() -> None:
    index = GoldenIndex(["a b c d e", "x y z"])
    same, edited, unrelated, short = index.nearest(["A, b c d e!", "a b c d q", "p q r s", "x y"])
    assert same == 1.0
    assert edited == pytest.approx(2 / 4)  # {abc, bcd} shared of {abc, bcd, cde, bdq...}
    assert unrelated == 0.0
    assert short == 0.0  # a two-word text is one shingle, ("x", "y"), which no trigram equals
    assert shingles("one two") == frozenset({("one", "two")})
    assert index.nearest([None, ""]) == [0.0, 0.0]
