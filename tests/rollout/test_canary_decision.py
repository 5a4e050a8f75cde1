import pytest

from bertloop.core.config import CanaryConfig
from rollout.decision import ArmStats, StepEvidence, judge_step, non_inferiority_p_value

POLICY = CanaryConfig(min_requests_per_step=100, min_feedback_per_arm=30)
STEADY = tuple(0.8 + 0.001 * (i % 100) for i in range(200))


def arm(
    requests=200, errors=0, p95=20.0, confidences=STEADY, feedback_total=0, feedback_correct=0, answered=None
) -> ArmStats:
    answered = requests if answered is None else answered
    return ArmStats(requests, errors, p95, confidences, feedback_total, feedback_correct, answered)


def evidence(champion=None, canary=None, pairs=200, agreements=190) -> StepEvidence:
    return StepEvidence(champion or arm(), canary or arm(), pairs, agreements)


def test_a_healthy_baked_step_passes() -> None:
    verdict = judge_step(evidence(), POLICY, baked=True)
    assert verdict.outcome == "pass"
    assert any("agreement with the champion 95.0%" in reason for reason in verdict.reasons)


def test_it_waits_for_traffic_and_bake_time() -> None:
    assert judge_step(evidence(canary=arm(requests=50)), POLICY, baked=True).outcome == "wait"
    waiting = judge_step(evidence(), POLICY, baked=False)
    assert waiting.outcome == "wait" and "bake time has not passed" in waiting.reasons


@pytest.mark.parametrize(
    ("canary", "agreements", "words"),
    [
        (arm(errors=10), 190, "error rate 5.00% vs champion 0.00%"),
        (arm(p95=45.0), 190, "p95 latency 45.0 ms is 2.25x"),
        (
            arm(confidences=tuple(0.4 + 0.001 * (i % 100) for i in range(200))),
            190,
            "confidence drop",
        ),
    ],
)
def test_each_check_can_fail_the_step_before_the_bake_ends(
    canary: ArmStats, agreements: int, words: str
) -> None:
    verdict = judge_step(evidence(canary=canary, agreements=agreements), POLICY, baked=False)
    assert verdict.outcome == "fail"
    assert any(words in reason for reason in verdict.failed)


def test_latency_is_not_judged_on_the_champions_stragglers_at_full_share() -> None:
    # At 100% the champion answers only the few callers routed before the share changed; its
    # mirrored scoring of the canary's traffic gives it requests, but no answered latency.
    stragglers = arm(requests=200, answered=12, p95=9.0)
    verdict = judge_step(evidence(champion=stragglers, canary=arm(p95=40.0)), POLICY, baked=True)
    assert verdict.outcome == "pass"
    assert any("p95 latency not compared: the champion answered 12" in r for r in verdict.reasons)
    # With enough answers on both sides the same ratio fails.
    both = judge_step(evidence(champion=arm(p95=9.0), canary=arm(p95=40.0)), POLICY, baked=True)
    assert both.outcome == "fail"


def test_a_failing_check_on_a_small_sample_waits_instead() -> None:
    verdict = judge_step(evidence(canary=arm(requests=10, errors=3)), POLICY, baked=True)
    assert verdict.outcome == "wait"
    assert any("small sample" in reason for reason in verdict.reasons)


def test_accuracy_test_weighs_sample_size() -> None:
    # The same 10-point drop: not significant on 40 labels per arm, significant on 2,000.
    small = evidence(
        champion=arm(feedback_total=40, feedback_correct=36),
        canary=arm(feedback_total=40, feedback_correct=32),
    )
    assert judge_step(small, POLICY, baked=True).outcome == "pass"
    large = evidence(
        champion=arm(feedback_total=2000, feedback_correct=1800),
        canary=arm(feedback_total=2000, feedback_correct=1600),
    )
    verdict = judge_step(large, POLICY, baked=True)
    assert verdict.outcome == "fail" and "accuracy 80.0%" in verdict.failed[0]


def test_accuracy_is_skipped_without_enough_feedback() -> None:
    verdict = judge_step(evidence(canary=arm(feedback_total=5, feedback_correct=0)), POLICY, baked=True)
    assert verdict.outcome == "pass"
    assert any("accuracy not compared" in reason for reason in verdict.reasons)


def test_non_inferiority_p_value_direction() -> None:
    worse, _ = non_inferiority_p_value(700, 1000, 900, 1000, margin=0.02)
    equal, _ = non_inferiority_p_value(900, 1000, 900, 1000, margin=0.02)
    assert worse < 0.001 < 0.5 < equal
    perfect, _ = non_inferiority_p_value(50, 50, 50, 50, margin=0.0)
    assert perfect == pytest.approx(0.5)


def test_a_more_confident_canary_is_not_penalised() -> None:
    sharper = arm(confidences=tuple(0.95 + 0.0004 * (i % 100) for i in range(200)))
    verdict = judge_step(evidence(canary=sharper), POLICY, baked=True)
    assert verdict.outcome == "pass"
    assert any("confidence drop against the champion (one-sided KS) 0.000" in r for r in verdict.reasons)


def test_disagreement_is_allowed_when_feedback_shows_the_canary_is_as_accurate() -> None:
    # After drift: the champion is often wrong, the canary is right, so they disagree.
    better = evidence(
        champion=arm(feedback_total=200, feedback_correct=120),
        canary=arm(feedback_total=200, feedback_correct=180),
        agreements=130,
    )
    verdict = judge_step(better, POLICY, baked=True)
    assert verdict.outcome == "pass"
    assert any("feedback shows the canary is not less accurate" in reason for reason in verdict.reasons)
    # Without enough feedback, the same disagreement waits for ground truth (the controller
    # fails the step when its time runs out).
    unjudged = judge_step(
        evidence(canary=arm(feedback_total=5, feedback_correct=5), agreements=130), POLICY, True
    )
    assert unjudged.outcome == "wait"
    assert any("waiting for feedback to show which model is right" in reason for reason in unjudged.reasons)
    # And a disagreeing canary that is less accurate fails on both counts.
    worse = evidence(
        champion=arm(feedback_total=500, feedback_correct=450),
        canary=arm(feedback_total=500, feedback_correct=200),
        agreements=100,
    )
    failed = judge_step(worse, POLICY, baked=True).failed
    assert any("agreement" in reason for reason in failed) and any("accuracy" in reason for reason in failed)


def timed(latencies: list[float], p95: float | None = None) -> ArmStats:
    import numpy as np

    return ArmStats(
        requests=len(latencies),
        errors=0,
        p95_latency_ms=float(np.percentile(latencies, 95)) if p95 is None else p95,
        confidences=STEADY,
        answered=len(latencies),
        latencies_ms=tuple(latencies),
    )


def test_the_p95_bounds_hold_at_their_stated_confidence() -> None:
    import numpy as np

    from rollout.decision import quantile_bounds

    generator = np.random.default_rng(7)
    true_p95 = -np.log(0.05)  # of the unit exponential
    misses_low = misses_high = 0
    draws = 2000
    for _ in range(draws):
        lower, upper = quantile_bounds(generator.exponential(size=60), 0.95, 0.025)
        misses_low += lower is not None and lower > true_p95
        misses_high += upper is not None and upper < true_p95
    assert misses_low / draws <= 0.025 + 0.01 and misses_high / draws <= 0.025 + 0.01
    assert quantile_bounds([1.0, 2.0, 3.0], 0.95, 0.025)[1] is None  # 3 answers cannot bound a p95 above


def test_a_few_stragglers_do_not_roll_back_a_canary_that_is_as_fast() -> None:
    base = [20.0 + (i % 10) for i in range(300)]
    canary = [20.0 + (i % 10) for i in range(100)] + [400.0] * 6  # a p95 of 106 answers, 6 stragglers
    verdict = judge_step(evidence(champion=timed(base), canary=timed(canary)), POLICY, baked=True)
    assert timed(canary).p95_latency_ms > 2 * POLICY.max_p95_latency_ratio * timed(base).p95_latency_ms  # type: ignore[operator]
    assert verdict.outcome == "pass", verdict.reasons
    assert any("not shown above it" in reason for reason in verdict.reasons)


def test_a_canary_slower_across_the_board_is_rolled_back() -> None:
    base = [20.0 + (i % 10) for i in range(300)]
    slow = [3 * latency for latency in base[:120]]
    verdict = judge_step(evidence(champion=timed(base), canary=timed(slow)), POLICY, baked=False)
    assert verdict.outcome == "fail"
    assert any("shown 3.00x" in reason for reason in verdict.failed), verdict.failed
