"""Which versions the gateway serves: aliases and the canary share read from MLflow, each new version
loaded once off the request path and proved before it is routed a request.

Versions are proved one per refresh, the champion first, so a starting gateway
answers as soon as its champion has passed. A version that fails to load, or
fails infra validation (:mod:`serving.infra_validation`), is routed nothing: the
reason is tagged on the version (the canary controller fails closed on it) and
written to the promotion ledger, and the gateway keeps serving what it served
before. A refused version is not retried until the gateway restarts; one that
passed is tagged too, with its figures, and is proved again whenever it is loaded
again (an alias that leaves a version unloads it).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from bertloop.core.stores.ledger import Ledger
from modeling import infra_sample
from modeling.runner import Compute, inline
from registry.mlflow_registry import (
    canary_percent,
    connect,
    infra_sample_of,
    set_version_tag,
    version_for_alias,
)
from serving.infra_validation import InfraVerdict, load_failed, prove
from serving.models import (
    RoutingState,
    ServedModel,
    load_from_registry,
    serving_plan,
)

log = logging.getLogger(__name__)

Loader = Callable[[PlatformConfig, str, Compute], ServedModel]
Prover = Callable[[PlatformConfig, ServedModel, Compute], InfraVerdict]


def prove_from_registry(
    config: PlatformConfig, model: ServedModel, compute: Compute = inline
) -> InfraVerdict:
    """Prove ``model`` on the golden sample stored with its version's evaluation, its passes run
    through ``compute``."""
    settings = config.serving
    sample = None
    if settings.infra_sample_size > 0:
        with tempfile.TemporaryDirectory(prefix="bertloop-infra-") as folder:
            path = infra_sample_of(connect(config), config.registry.model_name, model.version, Path(folder))
            sample = infra_sample.load(path) if path is not None else None
    return prove(
        model,
        sample,
        settings.max_batch_size,
        settings.max_batch_tokens,
        settings.max_precision_drop,
        compute,
    )


class RegistryWatcher:
    def __init__(
        self,
        config: PlatformConfig,
        loader: Loader = load_from_registry,
        prover: Prover = prove_from_registry,
    ):
        self.config = config
        self.loader = loader
        self.prover = prover
        self._loaded: dict[str, ServedModel] = {}
        self.verdicts: dict[str, InfraVerdict] = {}  # every version tried, passed or refused
        self.pending: list[str] = []  # aliased versions waiting for their turn to be proved
        self._state = RoutingState(champion=None, canary=None, canary_percent=0.0)

    @property
    def refused(self) -> dict[str, InfraVerdict]:
        return {version: verdict for version, verdict in self.verdicts.items() if not verdict.passed}

    def refresh(self, compute: Compute = inline) -> RoutingState:
        """Read the aliases, admit at most one new version, and return what to route. Torch work
        (putting a version on the serving plan, proving it) runs through ``compute``."""
        client = connect(self.config)
        name = self.config.registry.model_name
        champion = version_for_alias(client, name, constants.CHAMPION_ALIAS)
        canary = version_for_alias(client, name, constants.CHALLENGER_ALIAS)
        percent = canary_percent(client, name) if canary else 0.0
        wanted = {version for version in (champion, canary) if version}
        # One new version per refresh, the champion first: a gateway starts serving once its champion
        # is proved, and proving the canary never holds a swap of the champion back.
        refused = self.refused
        waiting = [v for v in (champion, canary) if v and v not in self._loaded and v not in refused]
        if waiting:
            self._admit(waiting[0], compute)
        self.pending = waiting[1:]
        previous = self._state.champion
        for version in self._loaded.keys() - wanted:
            del self._loaded[version]  # in-flight requests keep their own reference
        served_champion = self._loaded.get(champion) if champion else None
        if served_champion is None and champion is not None and previous is not None:
            # Never drop to serving nothing because the new champion cannot serve: keep the last one.
            log.error("champion v%s cannot be served; still serving v%s", champion, previous.version)
            served_champion = previous
        self._state = RoutingState(
            champion=served_champion,
            canary=self._loaded.get(canary) if canary and canary != champion else None,
            canary_percent=percent,
        )
        return self._state

    def _admit(self, version: str, compute: Compute) -> None:
        name = self.config.registry.model_name
        log.info("loading %s version %s", name, version)
        try:
            model = self.loader(self.config, version, compute)
        except Exception as error:  # a version that cannot load is refused, not a gateway that dies
            verdict = load_failed(error, serving_plan(self.config).describe())
        else:
            try:
                verdict = self.prover(self.config, model, compute)
            except ValueError as error:  # its stored sample is unreadable: refused, with the reason
                plan = model.runner.plan.describe()
                verdict = InfraVerdict(False, f"could not be proved: {error}"[:2000], plan)
            # Other errors (the registry briefly away) propagate: the next refresh tries again.
            if verdict.passed:
                self._loaded[version] = model
        self.verdicts[version] = verdict
        self._record(version, verdict)

    def _record(self, version: str, verdict: InfraVerdict) -> None:
        name = self.config.registry.model_name
        client = connect(self.config)
        set_version_tag(client, name, version, constants.TAG_INFRA_VALIDATION, verdict.tag)
        if verdict.passed:
            log.info("v%s passed infra validation: %s", version, verdict.reason)
            return
        log.error("v%s refused by infra validation: %s", version, verdict.reason)
        Ledger(self.config.ledger_url).append(
            "gateway", constants.LEDGER_INFRA_FAILED, name, to_version=version, evidence=verdict.evidence()
        )
