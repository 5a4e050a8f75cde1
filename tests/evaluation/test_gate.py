"""The gate on constructed predictions whose right answer is known in advance."""

import numpy as np
import pytest

from evaluation import paired
from evaluation.gate import FAILED, NOT_JUDGED, PASSED, GatePolicy, GoldenPredictions, decide

LABELS = ["a", "b", "c", "d"]
POLICY = GatePolicy(
    minimums={"accuracy": 0.5, "macro_f1": 0.5},
    max_regression={"accuracy": 0.02, "macro_f1": 0.02},
    class_recall_floor=0.25,
    resamples=1000,
)


def golden(n: int) -> list[str]:
    return [LABELS[i % len(LABELS)] for i in range(n)]


def spoil(truth: list[str], positions: np.ndarray) -> list[str]:
    """The truth with the items at ``positions`` answered wrongly (the next label)."""
    answers = list(truth)
    for position in positions:
        answers[position] = LABELS[(LABELS.index(truth[position]) + 1) % len(LABELS)]
    return answers


def test_first_model_is_judged_on_floors_with_intervals() -> None:
    truth = golden(200)
    decision = decide(GoldenPredictions(truth, spoil(truth, np.arange(0, 200, 10)), LABELS), POLICY)
    assert decision.blessed, decision.failed
    accuracy = decision.intervals["accuracy"]
    assert accuracy.estimate == pytest.approx(0.9)
    assert accuracy.lower < 0.9 < accuracy.upper and accuracy.n == 200
    assert accuracy.describe().startswith("0.900 (0.8")
    assert any("no champion yet" in reason for reason in decision.reasons)


def test_a_real_improvement_passes_as_better() -> None:
    truth = golden(400)
    champion = spoil(truth, np.arange(0, 400, 5))  # 80% right
    candidate = spoil(truth, np.arange(0, 400, 20))  # 95% right, its errors a subset of the champion's
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY)
    assert decision.blessed, decision.failed
    verdicts = {comparison.metric: comparison for comparison in decision.comparisons}
    assert verdicts["accuracy"].verdict == paired.BETTER
    assert verdicts["accuracy"].difference == pytest.approx(0.15)
    assert verdicts["accuracy"].mcnemar_p < 1e-6
    assert verdicts["macro_f1"].lower > 0


def test_accuracy_without_a_margin_is_still_stated_with_mcnemar_and_decides_nothing() -> None:
    truth = golden(400)
    champion = spoil(truth, np.arange(0, 400, 20))  # 95% right
    candidate = spoil(truth, np.arange(0, 400, 5))  # 80% right: worse on accuracy by 15 points
    # Only macro-F1 is gated, at a margin wide enough to pass; classes are not compared here.
    macro_only = GatePolicy(
        minimums={"accuracy": 0.5}, max_regression={"macro_f1": 0.5}, class_margin=1.0, resamples=1000
    )
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), macro_only)
    assert decision.blessed, decision.failed  # the accuracy statement decides nothing
    (stated,) = [reason for reason in decision.reasons if reason.startswith("accuracy: candidate")]
    assert "difference -0.1500" in stated and "n=400" in stated
    assert "McNemar exact p=<0.001 for 'same accuracy'" in stated
    assert stated.endswith("reported, not gated (no accuracy margin in gate.max_regression)")
    assert [comparison.metric for comparison in decision.comparisons] == ["macro_f1"]
    gated = decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY)
    assert not any("not gated" in reason for reason in gated.reasons)  # stated once, by its comparison


def test_an_equal_model_passes_non_inferiority() -> None:
    truth = golden(2000)
    champion = spoil(truth, np.arange(0, 2000, 10))  # 10% wrong
    candidate = spoil(truth, np.arange(5, 2000, 10))  # 10% wrong, on other items
    candidate = [c if i % 100 else t for i, (c, t) in enumerate(zip(champion, truth, strict=True))]
    candidate = spoil(candidate, np.arange(1, 2000, 100))  # as many errors, 40 items disagree
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY)
    assert decision.blessed, decision.failed
    verdict = {comparison.metric: comparison for comparison in decision.comparisons}["accuracy"]
    assert verdict.difference == pytest.approx(0.0)
    assert verdict.verdict == paired.NON_INFERIOR
    assert -0.02 < verdict.lower < 0 < verdict.upper
    assert verdict.mcnemar_p == pytest.approx(1.0)


def test_worse_by_the_margin_fails_and_says_so() -> None:
    truth = golden(1000)
    champion = spoil(truth, np.arange(0, 1000, 20))  # 95% right
    candidate = spoil(truth, np.arange(0, 1000, 5))  # 80% right
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY)
    assert not decision.blessed
    accuracy = next(reason for reason in decision.failed if reason.startswith("accuracy:"))
    assert "difference -0.1500" in accuracy and "n=1000" in accuracy and accuracy.endswith(paired.WORSE)


def test_a_small_class_wiped_out_fails_its_floor() -> None:
    labels = [*LABELS, "rare"]
    truth = golden(400) + ["rare"] * 12
    candidate = truth[:400] + ["a"] * 12  # every other class perfect; the small one never found
    decision = decide(GoldenPredictions(truth, candidate, labels), POLICY)
    assert decision.intervals["accuracy"].estimate > 0.97  # the aggregate hides it
    assert not decision.blessed
    rare = next(group for group in decision.classes if group.name == "class rare")
    assert rare.status == FAILED and rare.n == 12
    assert any(reason.startswith("class rare: recall 0.000 (0.000–0.2") for reason in decision.failed)
    # Every class's F1 and recall is stated with its interval, like the aggregate metrics.
    assert decision.class_intervals["recall_rare"].describe().startswith("0.000 (0.000–0.2")
    assert decision.class_intervals["recall_rare"].n == 12
    assert decision.class_intervals["f1_b"].estimate == pytest.approx(1.0)
    f1_a = decision.class_intervals["f1_a"]  # a received the rare items: precision 100/112
    assert f1_a.estimate == pytest.approx(2 * (100 / 112) / (1 + 100 / 112))
    assert f1_a.lower < f1_a.estimate <= f1_a.upper


def test_a_class_regressing_with_confidence_fails_though_the_aggregate_holds() -> None:
    truth = golden(2000)
    champion = list(truth)
    a_items = np.flatnonzero(np.array(truth) == "a")
    candidate = spoil(truth, a_items[: len(a_items) // 4])  # a quarter of class a lost: 1.25 points overall
    policy = GatePolicy(minimums={"accuracy": 0.5}, max_regression={"accuracy": 0.05}, resamples=1000)
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), policy)
    assert not decision.blessed
    # Class a lost recall; class b, which received those items, lost precision.
    assert [group.name for group in decision.classes if group.status == FAILED] == ["class a", "class b"]
    assert decision.classes[2].status == PASSED


def test_a_tiny_golden_set_is_not_enough_evidence_and_advises_a_size() -> None:
    truth = golden(20)
    champion = spoil(truth, np.array([0, 1]))
    candidate = spoil(truth, np.array([2, 3]))  # as accurate; 4 of 20 items disagree
    policy = GatePolicy(minimums={"accuracy": 0.5}, max_regression={"accuracy": 0.05}, resamples=4000)
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion), policy)
    assert not decision.blessed
    assert decision.comparisons[0].verdict == paired.INCONCLUSIVE
    # A paired difference with a share d of discordant items has variance d/n, so an equal model
    # needs n = d·(z_0.975 + z_0.8)²/margin² = 0.2 · 2.8016² / 0.05² ≈ 628 items.
    (advice,) = decision.advice
    needed = int(advice.split("about ")[1].split()[0])
    assert 500 < needed < 760, advice
    assert "(n=20) is too small" in advice


def test_a_slice_that_regresses_fails_and_a_small_one_is_not_judged() -> None:
    truth = golden(600)
    champion = list(truth)
    long_items = np.arange(400, 600)
    candidate = spoil(truth, long_items[::2])  # half the long texts lost
    slices = {"length: long": long_items, "length: short": np.arange(0, 400), "source=rare": np.arange(0, 10)}
    policy = GatePolicy(minimums={"accuracy": 0.5}, max_regression={"accuracy": 0.2}, resamples=1000)
    decision = decide(GoldenPredictions(truth, candidate, LABELS, champion, slices), policy)
    status = {group.name: group.status for group in decision.slices}
    assert status == {"length: long": FAILED, "length: short": PASSED, "source=rare": NOT_JUDGED}
    assert not decision.blessed
    strict = GatePolicy(**{**policy.__dict__, "fail_on_small_slices": True})
    clean = decide(
        GoldenPredictions(truth, champion, LABELS, champion, {"source=rare": np.arange(10)}), strict
    )
    assert not clean.blessed and "failing closed" in clean.failed[0]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (GatePolicy(minimums={}, max_regression={"accuracy": 0.1}), "no minimum thresholds"),
        (GatePolicy(minimums={"accuracy": 0.1}, max_regression={}), "no non-inferiority margin"),
        (GatePolicy(minimums={"auc": 0.1}, max_regression={"accuracy": 0.1}), "auc: not a golden metric"),
    ],
)
def test_missing_or_unknown_thresholds_fail_closed(policy: GatePolicy, expected: str) -> None:
    truth = golden(100)
    decision = decide(GoldenPredictions(truth, truth, LABELS, truth), policy)
    assert not decision.blessed
    assert any(expected in reason for reason in decision.failed)


def test_predictions_that_do_not_line_up_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        decide(GoldenPredictions(["a", "b"], ["a"], LABELS), POLICY)
    with pytest.raises(ValueError, match="outside the label set"):
        decide(GoldenPredictions(["a"], ["zz"], LABELS), POLICY)


def test_the_verdict_is_reproducible() -> None:
    truth = golden(100)
    candidate, champion = spoil(truth, np.arange(0, 100, 7)), spoil(truth, np.arange(0, 100, 9))
    first = decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY)
    assert decide(GoldenPredictions(truth, candidate, LABELS, champion), POLICY).reasons == first.reasons
