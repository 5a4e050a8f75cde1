import pytest

from drift.storm import RetrainHistory, StormPolicy, may_retrain

POLICY = StormPolicy(cooldown_seconds=3600, backoff_factor=2, max_cooldown_seconds=86_400)
QUIET = RetrainHistory(retrains_running=0, last_trigger_at=None, last_snapshot=None, consecutive_unblessed=0)


def history(**changes) -> RetrainHistory:
    return RetrainHistory(**{**QUIET.__dict__, **changes})


def test_first_drift_may_retrain() -> None:
    assert may_retrain(1000.0, "snap-a", QUIET, POLICY).allowed


def test_at_most_one_retrain_at_a_time() -> None:
    decision = may_retrain(1000.0, "snap-a", history(retrains_running=1), POLICY)
    assert not decision.allowed and "already in progress" in decision.reason


def test_no_second_retrain_for_the_same_snapshot() -> None:
    decision = may_retrain(99_999.0, "snap-a", history(last_snapshot="snap-a", last_trigger_at=0.0), POLICY)
    assert not decision.allowed and "already used" in decision.reason


def test_cooldown_after_a_retrain() -> None:
    recent = history(last_trigger_at=0.0, last_snapshot="old")
    assert not may_retrain(3599.0, "new", recent, POLICY).allowed
    assert may_retrain(3600.0, "new", recent, POLICY).allowed


@pytest.mark.parametrize(("unblessed", "cooldown"), [(0, 3600), (1, 7200), (3, 28_800), (10, 86_400)])
def test_backoff_after_unblessed_retrains(unblessed: int, cooldown: float) -> None:
    failing = history(last_trigger_at=0.0, last_snapshot="old", consecutive_unblessed=unblessed)
    decision = may_retrain(cooldown - 1, "new", failing, POLICY)
    assert decision.cooldown_seconds == cooldown
    assert not decision.allowed
    assert may_retrain(cooldown, "new", failing, POLICY).allowed
    if unblessed:
        assert "backed off" in decision.reason
