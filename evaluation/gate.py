"""The blessing decision: a pure function of golden-set predictions and policy, with no I/O.

Candidate and champion answered the same golden items in the same run, so the
gate compares them pairwise (:mod:`evaluation.paired`):

- floors on the candidate's headline metrics (``minimums``);
- non-inferiority against the champion on each metric in ``max_regression``
  (the margin), shown with the configured confidence;
- a recall floor per class, and no class's F1 worse than the champion's beyond
  ``class_margin`` with confidence;
- no slice (text length, named columns) worse than the champion's beyond
  ``slice_margin`` with confidence; a slice too small to judge is reported as
  not judged, or fails when the policy says so.

It fails closed: no thresholds, an unknown metric, or not enough evidence of
non-inferiority mean *not blessed*. Every check, passed or failed, is kept as a
reason in plain words, with its interval and sample size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bertloop.core import constants
from bertloop.core.config import GateConfig
from evaluation import paired
from evaluation.paired import Comparison, Indices, Interval

PASSED, FAILED, NOT_JUDGED = "passed", "failed", "not judged"


@dataclass(frozen=True)
class GatePolicy:
    minimums: Mapping[str, float]
    max_regression: Mapping[str, float]  # non-inferiority margin per metric
    confidence: float = 0.95
    class_recall_floor: float = 0.0
    class_margin: float = 0.05
    slice_margin: float = 0.05
    min_slice_size: int = 30
    fail_on_small_slices: bool = False
    power: float = 0.8
    resamples: int = 2000
    seed: int = 0

    @classmethod
    def from_config(cls, gate: GateConfig) -> GatePolicy:
        return cls(
            minimums=gate.minimums,
            max_regression=gate.max_regression,
            confidence=gate.confidence,
            class_recall_floor=gate.class_recall_floor,
            class_margin=gate.class_margin,
            slice_margin=gate.slice_margin,
            min_slice_size=gate.min_slice_size,
            fail_on_small_slices=gate.fail_on_small_slices,
            power=gate.power,
            resamples=gate.bootstrap_resamples,
            seed=gate.seed,
        )


@dataclass(frozen=True)
class GoldenPredictions:
    """What both models answered on the same golden items, and the golden set's slices."""

    truth: Sequence[str]
    candidate: Sequence[str]
    labels: Sequence[str]
    champion: Sequence[str] | None = None
    slices: Mapping[str, Indices] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupResult:
    """One class or one slice: the candidate's interval, the champion's, the paired comparison."""

    name: str
    n: int
    status: str
    candidate: Interval | None = None
    champion: Interval | None = None
    comparison: Comparison | None = None
    note: str = ""


@dataclass(frozen=True)
class Decision:
    blessed: bool
    reasons: tuple[str, ...]
    failed: tuple[str, ...] = ()
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    champion_intervals: Mapping[str, Interval] = field(default_factory=dict)
    # The candidate's per-class F1 (bootstrap) and recall (Wilson), "f1_<label>" and "recall_<label>":
    # stated with their intervals like every golden metric; the class floors and margins judge them.
    class_intervals: Mapping[str, Interval] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    classes: tuple[GroupResult, ...] = ()
    slices: tuple[GroupResult, ...] = ()
    advice: tuple[str, ...] = ()


METRICS = (constants.METRIC_ACCURACY, constants.METRIC_MACRO_F1)


def decide(golden: GoldenPredictions, policy: GatePolicy) -> Decision:
    """Bless the candidate if it clears every floor and is shown non-inferior to the champion.

    Without a champion only the floors apply. Both models' predictions must come
    from the same golden items in the same run.
    """
    truth, candidate, champion = _indices(golden)
    n = len(truth)
    models = [candidate] if champion is None else [candidate, champion]
    mine, *theirs = paired.bootstrap(truth, models, len(golden.labels), policy.resamples, policy.seed)
    intervals = _intervals(mine, truth, candidate, policy.confidence)
    passed: list[str] = []
    failed: list[str] = []
    advice: list[str] = []

    if not policy.minimums:
        failed.append("no minimum thresholds are configured (gate.minimums); failing closed")
    for metric, floor in sorted(policy.minimums.items()):
        if metric not in intervals:
            failed.append(f"{metric}: not a golden metric (known: {', '.join(METRICS)}); failing closed")
        elif intervals[metric].estimate < floor:
            failed.append(f"{metric} {intervals[metric].describe()} is below the minimum {floor:.4f}")
        else:
            passed.append(f"{metric} {intervals[metric].describe()} meets the minimum {floor:.4f}")

    comparisons: list[Comparison] = []
    champion_intervals: dict[str, Interval] = {}
    if champion is None:
        passed.append("no champion yet: judged on the minimums and class floors alone")
    else:
        champion_intervals = _intervals(theirs[0], truth, champion, policy.confidence)
        if not policy.max_regression:
            failed.append("no non-inferiority margin is configured (gate.max_regression); failing closed")
        for metric, margin in sorted(policy.max_regression.items()):
            if metric not in intervals:
                failed.append(f"{metric}: not a golden metric (known: {', '.join(METRICS)}); failing closed")
                continue
            comparison, needed = _compare(metric, mine, theirs[0], truth, candidate, champion, margin, policy)
            comparisons.append(comparison)
            if comparison.verdict in (paired.BETTER, paired.NON_INFERIOR):
                passed.append(comparison.describe())
            else:
                failed.append(comparison.describe())
            if needed is None or needed > n:
                advice.append(_advice(metric, margin, n, needed, policy))
        if constants.METRIC_ACCURACY not in policy.max_regression:
            # McNemar's test of accuracy is stated on every paired evaluation, gated or not.
            passed.append(
                paired.describe_unjudged(
                    constants.METRIC_ACCURACY, mine.point_accuracy, theirs[0].point_accuracy,
                    mine.accuracy - theirs[0].accuracy, policy.confidence, n,
                    paired.mcnemar_exact(candidate == truth, champion == truth),
                )
            )  # fmt: skip

    classes = _classes(golden, truth, candidate, champion, mine, theirs, policy)
    slices = [
        _slice(name, members, truth, candidate, champion, golden, policy)
        for name, members in golden.slices.items()
    ]
    for group in (*classes, *slices):
        if group.status == FAILED:
            failed.append(group.note)
        elif group.note:
            passed.append(group.note)
    return Decision(
        blessed=not failed,
        reasons=tuple(failed + passed + advice),
        failed=tuple(failed),
        intervals=intervals,
        champion_intervals=champion_intervals,
        class_intervals=_class_intervals(golden.labels, mine, truth, candidate, policy.confidence),
        comparisons=tuple(comparisons),
        classes=tuple(classes),
        slices=tuple(slices),
        advice=tuple(advice),
    )


def _indices(golden: GoldenPredictions) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    position = {label: index for index, label in enumerate(golden.labels)}
    columns = {"truth": golden.truth, "candidate": golden.candidate}
    if golden.champion is not None:
        columns["champion"] = golden.champion
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"golden predictions differ in length: {lengths}")
    if not golden.truth:
        raise ValueError("cannot judge a model on an empty golden set")
    converted: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        unknown = sorted({value for value in values if value not in position})
        if unknown:
            raise ValueError(f"{name} holds labels {unknown[:5]} outside the label set {list(golden.labels)}")
        converted[name] = np.array([position[value] for value in values])
    return converted["truth"], converted["candidate"], converted.get("champion")


def _intervals(
    resampled: paired.Resampled, truth: np.ndarray, predicted: np.ndarray, confidence: float
) -> dict[str, Interval]:
    n = len(truth)
    return {
        constants.METRIC_ACCURACY: paired.wilson(int((truth == predicted).sum()), n, confidence),
        constants.METRIC_MACRO_F1: paired.bootstrap_interval(
            resampled.macro_f1, resampled.point_macro_f1, n, confidence
        ),
    }


def _class_intervals(
    labels: Sequence[str],
    resampled: paired.Resampled,
    truth: np.ndarray,
    predicted: np.ndarray,
    confidence: float,
) -> dict[str, Interval]:
    intervals: dict[str, Interval] = {}
    for index, label in enumerate(labels):
        members = truth == index
        support = int(members.sum())
        if support == 0:
            continue  # a class the golden set lacks has no recall to state
        intervals[f"f1_{label}"] = paired.bootstrap_interval(
            resampled.class_f1[:, index], float(resampled.point_class_f1[index]), support, confidence
        )
        recalled = int((predicted[members] == index).sum())
        intervals[f"recall_{label}"] = paired.wilson(recalled, support, confidence)
    return intervals


def _compare(
    metric: str,
    mine: paired.Resampled,
    theirs: paired.Resampled,
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    margin: float,
    policy: GatePolicy,
) -> tuple[Comparison, int | None]:
    n = len(truth)
    if metric == constants.METRIC_ACCURACY:
        differences = mine.accuracy - theirs.accuracy
        point = (mine.point_accuracy, theirs.point_accuracy)
        mcnemar = paired.mcnemar_exact(candidate == truth, champion == truth)
    else:
        differences = mine.macro_f1 - theirs.macro_f1
        point = (mine.point_macro_f1, theirs.point_macro_f1)
        mcnemar = None
    comparison = paired.compare(metric, *point, differences, margin, policy.confidence, n, mcnemar)
    return comparison, paired.required_size(n, differences, margin, policy.confidence, policy.power)


def _advice(metric: str, margin: float, n: int, needed: int | None, policy: GatePolicy) -> str:
    if needed is None:
        return f"{metric}: a margin of 0 cannot be shown by any golden set; configure a positive margin"
    return (
        f"the golden set (n={n}) is too small to show {metric} non-inferiority at a margin of {margin:.4f} "
        f"with {policy.confidence:.0%} confidence and {policy.power:.0%} power for models that disagree "
        f"as often as these two; about {needed} golden examples would be needed"
    )


def _classes(
    golden: GoldenPredictions,
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    mine: paired.Resampled,
    theirs: list[paired.Resampled],
    policy: GatePolicy,
) -> list[GroupResult]:
    results = []
    for index, label in enumerate(golden.labels):
        members = truth == index
        support = int(members.sum())
        if support == 0:
            results.append(GroupResult(f"class {label}", 0, NOT_JUDGED, note=""))
            continue
        recall = paired.wilson(int((candidate[members] == index).sum()), support, policy.confidence)
        their_recall = (
            paired.wilson(int((champion[members] == index).sum()), support, policy.confidence)
            if champion is not None
            else None
        )
        comparison = None
        if theirs:
            comparison = paired.compare(
                f"F1 of class {label}",
                float(mine.point_class_f1[index]),
                float(theirs[0].point_class_f1[index]),
                mine.class_f1[:, index] - theirs[0].class_f1[:, index],
                policy.class_margin,
                policy.confidence,
                support,
            )
        if recall.estimate < policy.class_recall_floor:
            status = FAILED
            floor = policy.class_recall_floor
            note = f"class {label}: recall {recall.describe()} is below the floor {floor:.2f}"
        elif comparison is not None and comparison.verdict == paired.WORSE:
            status, note = (
                FAILED,
                f"class {label}: regressed beyond the class margin; {comparison.describe()}",
            )
        else:
            status = PASSED
            note = (
                f"class {label}: recall {recall.describe()} meets the floor {policy.class_recall_floor:.2f}"
                + ("" if comparison is None else f"; F1 {comparison.difference:+.4f} against the champion")
            )
        results.append(GroupResult(f"class {label}", support, status, recall, their_recall, comparison, note))
    return results


def _slice(
    name: str,
    positions: Indices,
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    golden: GoldenPredictions,
    policy: GatePolicy,
) -> GroupResult:
    members = np.asarray(positions, dtype=np.int64)
    n = len(members)
    if n == 0:
        return GroupResult(name, 0, NOT_JUDGED, note=f"slice {name}: empty; not judged")
    accuracy = paired.wilson(int((candidate[members] == truth[members]).sum()), n, policy.confidence)
    their_accuracy = (
        paired.wilson(int((champion[members] == truth[members]).sum()), n, policy.confidence)
        if champion is not None
        else None
    )
    if champion is None:
        return GroupResult(name, n, PASSED, accuracy, note=f"slice {name}: accuracy {accuracy.describe()}")
    if n < policy.min_slice_size:
        status = FAILED if policy.fail_on_small_slices else NOT_JUDGED
        note = f"slice {name}: {n} golden items, fewer than gate.min_slice_size={policy.min_slice_size}; " + (
            "failing closed (gate.fail_on_small_slices)" if status == FAILED else "not judged"
        )
        return GroupResult(name, n, status, accuracy, their_accuracy, note=note)
    mine, theirs = paired.bootstrap(
        truth[members],
        [candidate[members], champion[members]],
        len(golden.labels),
        policy.resamples,
        policy.seed,
    )
    comparison = paired.compare(
        f"accuracy on {name}",
        mine.point_accuracy,
        theirs.point_accuracy,
        mine.accuracy - theirs.accuracy,
        policy.slice_margin,
        policy.confidence,
        n,
        paired.mcnemar_exact(candidate[members] == truth[members], champion[members] == truth[members]),
    )
    if comparison.verdict == paired.WORSE:
        return GroupResult(
            name, n, FAILED, accuracy, their_accuracy, comparison,
            f"slice {name}: regressed beyond the slice margin; {comparison.describe()}",
        )  # fmt: skip
    return GroupResult(
        name, n, PASSED, accuracy, their_accuracy, comparison,
        f"slice {name}: accuracy {accuracy.describe()}, {comparison.difference:+.4f} against the champion",
    )  # fmt: skip
