"""The blessing decision: a pure function of metrics and policy, with no I/O.

It fails closed: a missing threshold, a missing metric or a NaN means *not
blessed*, and every check, passed or failed, is kept as a reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GatePolicy:
    minimums: Mapping[str, float]
    max_regression: Mapping[str, float]


@dataclass(frozen=True)
class Decision:
    blessed: bool
    reasons: tuple[str, ...]
    failed: tuple[str, ...] = field(default=())


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    policy: GatePolicy,
) -> Decision:
    """Bless ``candidate`` if it clears every floor and does not regress against ``champion``.

    ``champion`` is None when no champion exists yet; then only the floors apply.
    Both sets of metrics must come from the same golden set in the same run.
    """
    passed: list[str] = []
    failed: list[str] = []
    if not policy.minimums:
        failed.append("no minimum thresholds are configured (gate.minimums); failing closed")
    for metric, floor in sorted(policy.minimums.items()):
        value = _usable(candidate.get(metric))
        if value is None:
            failed.append(f"{metric}: missing from the candidate's metrics; failing closed")
        elif value < floor:
            failed.append(f"{metric} {value:.4f} is below the minimum {floor:.4f}")
        else:
            passed.append(f"{metric} {value:.4f} meets the minimum {floor:.4f}")
    if champion is None:
        passed.append("no champion yet: judged on the minimums alone")
    else:
        if not policy.max_regression:
            failed.append("no regression tolerance is configured (gate.max_regression); failing closed")
        for metric, tolerance in sorted(policy.max_regression.items()):
            mine, theirs = _usable(candidate.get(metric)), _usable(champion.get(metric))
            if mine is None or theirs is None:
                who = "candidate" if mine is None else "champion"
                failed.append(f"{metric}: missing from the {who}'s metrics; cannot compare, failing closed")
            elif mine < theirs - tolerance:
                failed.append(
                    f"{metric} {mine:.4f} regresses more than {tolerance:.4f} "
                    f"against the champion's {theirs:.4f}"
                )
            else:
                passed.append(
                    f"{metric} {mine:.4f} is within {tolerance:.4f} of the champion's {theirs:.4f} or better"
                )
    return Decision(blessed=not failed, reasons=tuple(failed + passed), failed=tuple(failed))


def _usable(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
