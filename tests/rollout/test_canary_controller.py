"""The canary controller against a real MLflow registry and prediction log, on a simulated clock.

Traffic is written straight into the prediction log as the gateway would write
it, so the whole ramp (four steps with bake times) runs in a few seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from bertloop.core import constants
from bertloop.core.stores.ledger import Ledger
from bertloop.core.stores.predictions import PredictionLog, PredictionRow
from rollout.controller import NothingToRollOut, restore_previous_champion, run_canary
from tests.conftest import Registry


class SimulatedTraffic:
    """A clock whose every tick brings one batch of champion, canary and mirrored predictions."""

    def __init__(self, log: PredictionLog, canary_agrees: bool, start: float, share: Callable[[], float]):
        self.log, self.canary_agrees, self.now, self.share = log, canary_agrees, start, share

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 30)
        rows = []
        for index in range(60):
            champion_id, canary_id = uuid.uuid4().hex, uuid.uuid4().hex
            canary_label = "sport" if self.canary_agrees or index % 2 else "tech"
            rows += [
                self._row(canary_id, "2", "canary", canary_label),
                self._row(uuid.uuid4().hex, "1", "shadow", "sport", mirror_of=canary_id, latency_ms=500.0),
            ]
            if self.share() < 100:  # at 100% the champion answers no one; only mirrors
                rows.append(self._row(champion_id, "1", "champion", "sport"))
        self.log.record(rows)
        self.log.flush()

    def _row(self, request_id, version, role, label, mirror_of=None, latency_ms=12.0) -> PredictionRow:
        # Mirrored scoring runs slowly in the background (500 ms); only answered latency counts.
        return PredictionRow(
            request_id, self.now, "c", version, role, "ok", latency_ms, label, 0.9, mirror_of=mirror_of
        )


@pytest.fixture
def fresh_rollout(two_versions: Registry):
    two_versions.set_alias("champion", "1")
    two_versions.set_alias("challenger", "2")
    if (
        "previous_champion"
        in two_versions.client().get_registered_model(two_versions.config.registry.model_name).aliases
    ):
        two_versions.delete_alias("previous_champion")
    two_versions.set_canary_percent(0)
    log = PredictionLog(two_versions.config.prediction_log_url)
    yield two_versions, log
    log.close()
    two_versions.set_alias("champion", "1")
    two_versions.set_alias("challenger", "2")


def _aliases(registry: Registry) -> dict[str, str]:
    aliases = registry.client().get_registered_model(registry.config.registry.model_name).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def test_a_good_challenger_is_promoted_through_every_step(fresh_rollout) -> None:
    import time

    registry, log = fresh_rollout
    traffic = SimulatedTraffic(
        log, canary_agrees=True, start=time.time() + 10_000, share=registry.canary_percent
    )
    config = registry.config.model_copy(update={"canary": registry.config.canary.model_copy(
        update={"bake_seconds": 60, "min_requests_per_step": 100, "poll_seconds": 30})})  # fmt: skip
    result = run_canary(config, clock=traffic.clock, sleep=traffic.sleep)
    assert result["outcome"] == "promoted"
    assert [step["percent"] for step in result["steps"]] == [5.0, 25.0, 50.0, 100.0]
    assert _aliases(registry) == {"champion": "2", "previous_champion": "1"}
    version = registry.client().get_model_version(config.registry.model_name, "2")
    assert version.tags[constants.TAG_CANARY_OUTCOME] == "promoted"
    actions = [(e.action, e.alias, e.from_version, e.to_version) for e in Ledger(config.ledger_url).entries()]
    assert ("promote", "champion", "1", "2") in actions
    assert ("demote", "previous_champion", None, "1") in actions
    shares = [
        e.evidence["percent"] for e in Ledger(config.ledger_url).entries() if e.action == "canary_share"
    ]
    assert shares[-5:] == [5.0, 25.0, 50.0, 100.0, 0]

    # One step back: previous_champion is champion again, and the ledger says who and why.
    restored = restore_previous_champion(config, actor="test-operator", reason="customer complaints")
    assert restored["champion"] == "1" and _aliases(registry) == {"champion": "1"}
    last = Ledger(config.ledger_url).entries()[-4:]
    assert any(e.action == "rollback" and e.actor == "test-operator" and e.to_version == "1" for e in last)
    with pytest.raises(NothingToRollOut, match="no previous_champion"):
        restore_previous_champion(config, actor="test-operator", reason="again")


def test_a_disagreeing_challenger_is_rolled_back_with_reasons(fresh_rollout) -> None:
    import time

    registry, log = fresh_rollout
    traffic = SimulatedTraffic(
        log, canary_agrees=False, start=time.time() + 20_000, share=registry.canary_percent
    )
    # No feedback ever comes, so nothing can show the disagreeing canary is right: it times out.
    config = registry.config.model_copy(
        update={"canary": registry.config.canary.model_copy(update={"step_timeout_seconds": 300})}
    )
    result = run_canary(config, clock=traffic.clock, sleep=traffic.sleep)
    assert result["outcome"] == "rolled_back"
    assert len(result["steps"]) == 1  # failed at the first step, 5%
    assert result["reasons"][0] == "step timed out after 300s"
    assert any("agreement with the champion 50.0%" in reason for reason in result["reasons"])
    assert _aliases(registry) == {"champion": "1"}
    tags = registry.client().get_model_version(registry.config.registry.model_name, "2").tags
    assert tags[constants.TAG_CANARY_OUTCOME] == "rolled_back"
    assert "agreement" in tags[constants.TAG_CANARY_REASONS]
    percent = registry.client().get_registered_model(registry.config.registry.model_name).tags
    assert percent[constants.TAG_CANARY_PERCENT] == "0"


def test_ledger_refuses_rewrites(two_versions: Registry) -> None:
    ledger = Ledger(two_versions.config.ledger_url)
    ledger.append("test", "note", "m", evidence={"summary": "kept forever"})
    with ledger.engine.begin() as connection, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        connection.execute(sa.text("UPDATE promotion_ledger SET actor = 'someone else'"))
    with ledger.engine.begin() as connection, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        connection.execute(sa.text("DELETE FROM promotion_ledger"))
    assert ledger.entries()[-1].evidence == {"summary": "kept forever"}
