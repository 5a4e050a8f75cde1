"""Every alias change goes through here, so each one lands in the ledger with its evidence."""

from __future__ import annotations

from typing import Any

from bertloop.core import constants
from bertloop.core.stores.ledger import Ledger
from registry import mlflow_registry as registry


class AliasChanger:
    def __init__(self, client: Any, model_name: str, ledger: Ledger, actor: str):
        self.client = client
        self.model_name = model_name
        self.ledger = ledger
        self.actor = actor

    def current(self, alias: str) -> str | None:
        return registry.version_for_alias(self.client, self.model_name, alias)

    def set(self, alias: str, version: str, action: str, evidence: dict[str, Any] | None = None) -> None:
        previous = self.current(alias)
        registry.set_alias(self.client, self.model_name, alias, version)
        self.ledger.append(self.actor, action, self.model_name, alias, previous, version, evidence)

    def remove(self, alias: str, action: str, evidence: dict[str, Any] | None = None) -> None:
        previous = self.current(alias)
        if previous is None:
            return
        self.client.delete_registered_model_alias(self.model_name, alias)
        self.ledger.append(self.actor, action, self.model_name, alias, previous, None, evidence)

    def set_canary_percent(self, percent: float, evidence: dict[str, Any] | None = None) -> None:
        registry.set_canary_percent(self.client, self.model_name, percent)
        self.ledger.append(
            self.actor,
            "canary_share",
            self.model_name,
            None,
            None,
            self.current("challenger"),
            {"percent": percent, **(evidence or {})},
        )

    def place_blessed(
        self, version: str, golden_hash: str | None, macro_f1: float, summary: str
    ) -> list[str]:
        """Alias a newly blessed version: champion if there is none, else challenger, one at a time.

        The challenger moves only to a version at least as good on the same golden set
        (by macro-F1) as the challenger waiting for its canary; two runs finishing close
        together can no longer swap a 0.97 challenger for a 0.71 one. A version evaluated
        on another golden set cannot be compared, and the newer evaluation wins. Returns
        the aliases the version holds, and records a kept challenger in the ledger.
        """
        if self.current(constants.CHAMPION_ALIAS) in (None, version):
            alias = constants.CHAMPION_ALIAS
        else:
            alias = constants.CHALLENGER_ALIAS
            waiting = self.current(alias)
            if waiting not in (None, version):
                theirs = registry.golden_comparison_facts(self.client, self.model_name, waiting)
                if (
                    theirs.golden_hash == golden_hash
                    and theirs.macro_f1 is not None
                    and macro_f1 < theirs.macro_f1
                ):
                    self.ledger.append(
                        self.actor, "challenger_kept", self.model_name, alias, waiting, waiting,
                        {"summary": f"v{version} (golden macro-F1 {macro_f1:.4f}) was blessed but stays "
                         f"below challenger v{waiting} ({theirs.macro_f1:.4f}) on the same golden set",
                         "candidate": version},
                    )  # fmt: skip
                    return []
        if self.current(alias) != version:  # a retried task changes (and records) nothing
            self.set(alias, version, "register", {"summary": summary})
        return [alias]
