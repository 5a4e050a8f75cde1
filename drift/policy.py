"""From the signals of one check to a verdict: nothing, a warning, or drift confirmed on what hurts.

A shift in what the model sees is not by itself a reason to retrain: traffic
moves between topics every day, and a model that still answers well needs no
new weights. So the verdict has three levels:

- **confirmed** (a retrain may start): evidence of harm, that is live accuracy
  on feedback, or the accuracy estimated from the model's (calibrated)
  confidence, significantly below what the champion showed; or a shift so large
  that its size, not only its significance, passes a separate threshold
  (``severe_mmd`` on the sentence-embedding MMD²: with a few hundred texts any
  real shift is "significant", so only an effect size can say "large");
- **warning** (reported on the timeline, starts nothing): an input or
  prediction shift without any sign of harm;
- **none**.

Calibration under the null: the p-values of every signal of the check form one
family, adjusted with Holm's step-down method, so the chance that *any* signal
fires on a window without drift is at most ``alpha`` (Holm controls the
family-wise error rate under any dependence between the signals). A confirmation
needs a firing signal, so the false-confirmation rate per check is at most
``alpha`` as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from drift.detectors import Signal

Level = Literal["none", "warning", "confirmed"]
NONE: Final = "none"
WARNING: Final = "warning"
CONFIRMED: Final = "confirmed"

# Signals that measure harm: what the model got wrong, or is expected to.
HARM_SIGNALS = frozenset({"accuracy", "estimated_accuracy"})
# The shift whose size alone can confirm: meaning moved, whatever the words.
SEVERE_SIGNAL = "embedding_mmd"


@dataclass(frozen=True)
class Verdict:
    level: Level
    reason: str
    adjusted: dict[str, float] = field(default_factory=dict)  # Holm-adjusted p-value per signal
    fired: list[str] = field(default_factory=list)  # significant after adjustment (and large enough)
    harm: list[str] = field(default_factory=list)
    severe: list[str] = field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return self.level == CONFIRMED


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values: reject ``name`` at family rate ``alpha`` when below ``alpha``."""
    # A p-value that is not a number (a degenerate sample) counts as no evidence; left as NaN it
    # would sort anywhere and poison the running maximum of every signal after it.
    cleaned = {name: p if math.isfinite(p) else 1.0 for name, p in p_values.items()}
    ordered = sorted(cleaned.items(), key=lambda item: item[1])
    family = len(ordered)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (name, p_value) in enumerate(ordered):
        running = max(running, min(1.0, (family - rank) * p_value))  # monotone in rank
        adjusted[name] = running
    return adjusted


def decide(signals: Sequence[Signal], alpha: float, severe_mmd: float) -> Verdict:
    """The verdict of one check; a signal counts only if its adjusted p-value is below ``alpha`` and
    its own effect-size condition (``Signal.drifted``, judged at the raw level) holds."""
    tested = {signal.name: signal.p_value for signal in signals if signal.p_value is not None}
    adjusted = holm(tested)
    fired = [s.name for s in signals if s.drifted and s.name in adjusted and adjusted[s.name] < alpha]
    harm = [name for name in fired if name in HARM_SIGNALS]
    severe = [
        s.name
        for s in signals
        if s.name == SEVERE_SIGNAL and s.name in fired and severe_mmd > 0 and s.statistic >= severe_mmd
    ]
    shift = [name for name in fired if name not in HARM_SIGNALS]
    if harm:
        reason = f"drift confirmed: harm shown by {', '.join(harm)}"
        if shift:
            reason += f"; shifted: {', '.join(shift)}"
        return Verdict(CONFIRMED, reason, adjusted, fired, harm, severe)
    if severe:
        return Verdict(
            CONFIRMED,
            f"drift confirmed: a shift beyond the severe threshold in {', '.join(severe)} "
            f"(MMD² at least {severe_mmd:g}), harm or not",
            adjusted, fired, harm, severe,
        )  # fmt: skip
    if shift:
        return Verdict(
            WARNING,
            f"warning: {', '.join(shift)} shifted, with no sign of harm (no retrain)",
            adjusted, fired, harm, severe,
        )  # fmt: skip
    return Verdict(NONE, f"no drift at family rate {alpha:g} ({len(tested)} signals, Holm)", adjusted)
