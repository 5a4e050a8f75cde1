"""The canary controller: ramp the challenger's share, judge each step, promote or roll back.

The decision is :func:`rollout.decision.judge_step`; this module only gathers the
evidence, waits, and applies the outcome to MLflow aliases and the ledger.
Time and sleeping are injected so tests can run the whole ramp in moments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.stores.ledger import Ledger
from registry.mlflow_registry import connect, version_tag
from rollout.aliases import AliasChanger
from rollout.decision import StepVerdict, judge_step
from rollout.evidence import collect

log = logging.getLogger(__name__)


class NothingToRollOut(LookupError):
    """There is no challenger (or no champion to compare it with)."""


def run_canary(
    config: PlatformConfig,
    actor: str = "canary-controller",
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    policy = config.canary
    aliases = AliasChanger(connect(config), config.registry.model_name, Ledger(config.ledger_url), actor)
    champion = aliases.current(constants.CHAMPION_ALIAS)
    challenger = aliases.current(constants.CHALLENGER_ALIAS)
    if challenger is None or champion is None:
        raise NothingToRollOut(
            f"nothing to roll out: champion={champion}, challenger={challenger}; "
            "register a blessed challenger first"
        )
    if challenger == champion:
        raise NothingToRollOut(f"version {challenger} is already the champion")
    history: list[dict[str, Any]] = []
    for percent in policy.steps:
        aliases.set_canary_percent(percent, {"summary": f"canary step {percent:g}%"})
        started = clock()
        while True:
            sleep(policy.poll_seconds)
            if (
                aliases.current(constants.CHAMPION_ALIAS) != champion
                or aliases.current(constants.CHALLENGER_ALIAS) != challenger
            ):
                return _roll_back(
                    aliases, challenger, history, ["aliases changed during the rollout; stopping"]
                )
            refused = _infra_refusal(aliases, challenger)
            if refused is not None:  # the gateway will never route it: fail closed at once
                history.append({"percent": percent, "outcome": "fail", "reasons": [refused], "evidence": {}})
                return _roll_back(aliases, challenger, history, [refused])
            evidence = collect(config.prediction_log_url, started, champion, challenger)
            verdict = judge_step(evidence, policy, baked=clock() - started >= policy.bake_seconds)
            if verdict.outcome == "wait" and clock() - started > policy.step_timeout_seconds:
                verdict = StepVerdict(
                    "fail", (f"step timed out after {policy.step_timeout_seconds:g}s", *verdict.reasons)
                )
            if verdict.outcome == "wait":
                continue
            history.append(
                {
                    "percent": percent,
                    "outcome": verdict.outcome,
                    "reasons": list(verdict.reasons),
                    "evidence": _summary(evidence),
                }
            )
            log.info("canary step %s%%: %s (%s)", percent, verdict.outcome, "; ".join(verdict.reasons))
            if verdict.outcome == "fail":
                return _roll_back(aliases, challenger, history, list(verdict.reasons))
            break
    return _promote(aliases, champion, challenger, history)


def _promote(
    aliases: AliasChanger, champion: str, challenger: str, history: list[dict[str, Any]]
) -> dict[str, Any]:
    evidence = {"summary": f"v{challenger} passed every canary step", "steps": history}
    aliases.set(constants.PREVIOUS_CHAMPION_ALIAS, champion, "demote", evidence)
    aliases.set(constants.CHAMPION_ALIAS, challenger, "promote", evidence)
    aliases.remove(constants.CHALLENGER_ALIAS, "promote", evidence)
    aliases.set_canary_percent(0, {"summary": "rollout finished"})
    _tag(aliases, challenger, "promoted", [f"passed {len(history)} steps"])
    return {"outcome": "promoted", "champion": challenger, "previous_champion": champion, "steps": history}


def _roll_back(
    aliases: AliasChanger, challenger: str, history: list[dict[str, Any]], reasons: list[str]
) -> dict[str, Any]:
    evidence = {
        "summary": f"v{challenger} failed the canary: {reasons[0]}",
        "reasons": reasons,
        "steps": history,
    }
    aliases.set_canary_percent(0, {"summary": "canary stopped"})
    aliases.remove(constants.CHALLENGER_ALIAS, "canary_rollback", evidence)
    _tag(aliases, challenger, "rolled_back", reasons)
    return {"outcome": "rolled_back", "challenger": challenger, "reasons": reasons, "steps": history}


def _infra_refusal(aliases: AliasChanger, version: str) -> str | None:
    """Why the gateway refused ``version`` (its infra-validation tag), or None if it has not."""
    tag = version_tag(aliases.client, aliases.model_name, version, constants.TAG_INFRA_VALIDATION)
    if tag is None or not tag.startswith(constants.INFRA_FAILED):
        return None
    reason = tag.removeprefix(f"{constants.INFRA_FAILED}: ")
    return f"the gateway refused v{version} in infra validation ({reason})"


def _tag(aliases: AliasChanger, version: str, outcome: str, reasons: list[str]) -> None:
    client, name = aliases.client, aliases.model_name
    client.set_model_version_tag(name, version, constants.TAG_CANARY_OUTCOME, outcome)
    client.set_model_version_tag(name, version, constants.TAG_CANARY_REASONS, "; ".join(reasons)[:5000])


def _summary(evidence: Any) -> dict[str, Any]:
    summary = asdict(evidence)
    for arm in ("champion", "canary"):
        summary[arm].pop("confidences", None)
    return summary


def restore_previous_champion(config: PlatformConfig, actor: str, reason: str) -> dict[str, Any]:
    """One-step rollback: ``previous_champion`` becomes ``champion`` again; any rollout stops."""
    if not reason.strip():
        raise ValueError("a rollback needs a reason; say why, it goes into the ledger")
    aliases = AliasChanger(connect(config), config.registry.model_name, Ledger(config.ledger_url), actor)
    previous = aliases.current(constants.PREVIOUS_CHAMPION_ALIAS)
    current = aliases.current(constants.CHAMPION_ALIAS)
    if previous is None:
        raise NothingToRollOut("there is no previous_champion to restore")
    evidence = {"summary": reason}
    aliases.set(constants.CHAMPION_ALIAS, previous, "rollback", evidence)
    # The alias is spent: a second rollback must not bring back the model just removed.
    aliases.remove(constants.PREVIOUS_CHAMPION_ALIAS, "rollback", evidence)
    aliases.remove(constants.CHALLENGER_ALIAS, "rollback", evidence)
    aliases.set_canary_percent(0, evidence)
    if current:
        _tag(aliases, current, "rolled_back", [reason])
    return {"outcome": "restored", "champion": previous, "replaced": current, "reason": reason}
