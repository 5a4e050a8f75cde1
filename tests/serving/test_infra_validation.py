"""The pure parts of infra validation: the verdict, and how passes are sized."""

from __future__ import annotations

import pytest

from modeling.infra_sample import InfraSample
from serving.batching import estimate_tokens, texts_per_pass
from serving.infra_validation import judge

LABELS = ["a", "b"] * 100  # 200 golden rows
SAMPLE = InfraSample(texts=[f"t{i}" for i in range(200)], labels=LABELS, predicted=LABELS)  # fp32: 100%


def served_with(wrong: int) -> list[str]:
    return [("b" if label == "a" else "a") if i < wrong else label for i, label in enumerate(LABELS)]


def test_the_same_answers_as_at_evaluation_pass() -> None:
    verdict = judge(SAMPLE, served_with(0), "cpu/int8", max_drop=0.005)
    assert verdict.passed and verdict.accuracy == 1.0 and verdict.agreement == 1.0
    assert verdict.tag.startswith("passed: accuracy 100.00% in cpu/int8 on 200 golden rows")


@pytest.mark.parametrize(("wrong", "passes"), [(1, True), (2, False), (20, False)])
def test_a_drop_beyond_max_precision_drop_is_refused(wrong: int, passes: bool) -> None:
    # One row of 200 is half a point: exactly the default limit, which is allowed; two are not.
    verdict = judge(SAMPLE, served_with(wrong), "cpu/bf16", max_drop=0.005)
    assert verdict.passed is passes
    if not passes:
        assert verdict.tag.startswith("failed: ") and "more than serving.max_precision_drop" in verdict.reason


def test_the_drop_is_measured_against_the_versions_own_accuracy_on_those_rows() -> None:
    # A version that was 90% right at evaluation and is 90% right as served has lost nothing.
    predicted = served_with(20)
    sample = InfraSample(texts=SAMPLE.texts, labels=LABELS, predicted=predicted)
    assert judge(sample, predicted, "cpu/int8", 0.0).passed


def test_missing_answers_fail() -> None:
    assert not judge(SAMPLE, LABELS[:10], "cpu/fp32", 0.5).passed


def test_passes_are_sized_by_count_and_by_padded_tokens() -> None:
    assert texts_per_pass([10] * 50, max_count=32, max_tokens=10_000) == 32
    assert texts_per_pass([128] * 50, max_count=32, max_tokens=1024) == 8  # 8 x 128 padded pieces
    assert texts_per_pass([10, 10, 10, 128, 10], max_count=32, max_tokens=256) == 3  # 4 x 128 > 256
    assert texts_per_pass([500], max_count=32, max_tokens=64) == 1  # always at least one text
    assert texts_per_pass([], max_count=32, max_tokens=64) == 0
    assert estimate_tokens("x" * 40, 128) == 12 and estimate_tokens("x" * 4000, 128) == 128
