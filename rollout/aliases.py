"""Every alias change goes through here, so each one lands in the ledger with its evidence."""

from __future__ import annotations

from typing import Any

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
