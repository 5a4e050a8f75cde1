"""Storm control: whether confirmed drift may start a retrain now. A pure function, tested on its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrainHistory:
    retrains_running: int
    last_trigger_at: float | None
    last_snapshot: str | None
    consecutive_unblessed: int  # newest registered versions in a row that the gate did not bless


@dataclass(frozen=True)
class StormPolicy:
    cooldown_seconds: float
    backoff_factor: float
    max_cooldown_seconds: float


@dataclass(frozen=True)
class StormDecision:
    allowed: bool
    reason: str
    cooldown_seconds: float


def may_retrain(now: float, snapshot: str, history: RetrainHistory, policy: StormPolicy) -> StormDecision:
    """One retrain at a time, never twice on one snapshot, a cooldown that grows after failures."""
    cooldown = min(
        policy.cooldown_seconds * policy.backoff_factor**history.consecutive_unblessed,
        policy.max_cooldown_seconds,
    )
    if history.retrains_running:
        return StormDecision(
            False, f"{history.retrains_running} retrain run(s) already in progress", cooldown
        )
    if snapshot == history.last_snapshot:
        return StormDecision(False, f"data snapshot {snapshot[:12]} was already used for a retrain", cooldown)
    if history.last_trigger_at is not None and now - history.last_trigger_at < cooldown:
        remaining = cooldown - (now - history.last_trigger_at)
        backoff = (
            f" (backed off x{policy.backoff_factor**history.consecutive_unblessed:g} after "
            f"{history.consecutive_unblessed} unblessed retrain(s))"
            if history.consecutive_unblessed
            else ""
        )
        return StormDecision(False, f"cooldown: {remaining:.0f}s of {cooldown:.0f}s left{backoff}", cooldown)
    return StormDecision(True, "no retrain running, new data, cooldown over", cooldown)
