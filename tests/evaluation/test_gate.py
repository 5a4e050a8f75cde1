import math

from evaluation.gate import GatePolicy, decide

POLICY = GatePolicy(minimums={"accuracy": 0.8, "macro_f1": 0.75}, max_regression={"macro_f1": 0.02})
GOOD = {"accuracy": 0.9, "macro_f1": 0.85}


def test_first_model_judged_on_minimums_alone() -> None:
    decision = decide(GOOD, None, POLICY)
    assert decision.blessed
    assert any("no champion yet" in reason for reason in decision.reasons)


def test_below_a_minimum_is_not_blessed() -> None:
    decision = decide({"accuracy": 0.79, "macro_f1": 0.85}, None, POLICY)
    assert not decision.blessed
    assert decision.failed == ("accuracy 0.7900 is below the minimum 0.8000",)


def test_regression_within_tolerance_is_blessed_beyond_it_is_not() -> None:
    assert decide({"accuracy": 0.9, "macro_f1": 0.84}, {"accuracy": 0.9, "macro_f1": 0.855}, POLICY).blessed
    decision = decide({"accuracy": 0.9, "macro_f1": 0.82}, {"accuracy": 0.9, "macro_f1": 0.85}, POLICY)
    assert not decision.blessed
    assert "regresses more than 0.0200" in decision.failed[0]


def test_missing_or_nan_metric_fails_closed() -> None:
    assert not decide({"accuracy": 0.9}, None, POLICY).blessed
    assert not decide({"accuracy": 0.9, "macro_f1": math.nan}, None, POLICY).blessed
    assert not decide(GOOD, {"accuracy": 0.9}, POLICY).blessed  # champion lacks the compared metric


def test_missing_thresholds_fail_closed() -> None:
    no_floors = decide(GOOD, None, GatePolicy(minimums={}, max_regression={"macro_f1": 0.1}))
    assert not no_floors.blessed
    assert "no minimum thresholds" in no_floors.failed[0]
    no_tolerance = decide(GOOD, GOOD, GatePolicy(minimums={"accuracy": 0.5}, max_regression={}))
    assert not no_tolerance.blessed
    assert "no regression tolerance" in no_tolerance.failed[0]


def test_every_check_is_kept_as_a_reason() -> None:
    decision = decide(GOOD, {"accuracy": 0.9, "macro_f1": 0.8}, POLICY)
    assert decision.blessed
    assert len(decision.reasons) == 3  # two floors and one comparison
