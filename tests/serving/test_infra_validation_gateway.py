"""Infra validation in a real gateway: a version that cannot load, or that answers worse as served than
it did at evaluation, gets no traffic; the ledger and its tag say why; the canary fails closed on it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from bertloop.core import constants
from bertloop.core.stores.ledger import Ledger
from rollout.controller import run_canary
from tests.conftest import LABELS
from tests.serving.conftest import GatewayProcess, Registry, start_gateway

pytestmark = pytest.mark.processes


def local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def weights_of(registry: Registry, version: str) -> Path:
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    registry.client()  # points MLflow at this registry
    name = registry.config.registry.model_name
    folder = local(ModelsArtifactRepository.get_underlying_uri(f"models:/{name}/{version}"))
    return next(folder.rglob("*.safetensors"))


def sample_of(registry: Registry, version: str) -> Path:
    client = registry.client()
    run_id = client.get_model_version(registry.config.registry.model_name, version).run_id
    return local(client.get_run(run_id).info.artifact_uri) / "evaluation" / constants.INFRA_SAMPLE_FILE


def answered_versions(gateway: GatewayProcess, count: int) -> set[str]:
    versions = set()
    for index in range(count):  # distinct callers: at 100% every one of them would reach the canary
        body = {"text": f"goal match {index}", "caller_key": f"caller-{index}"}
        response = httpx.post(f"{gateway.url}/predict", json=body, timeout=30)
        assert response.status_code == 200, response.text
        versions |= {p["model_version"] for p in response.json()["predictions"]}
    return versions


def refusals(registry: Registry) -> list[str]:
    entries = Ledger(registry.config.ledger_url).entries(registry.config.registry.model_name)
    return [
        entry.evidence["summary"]
        for entry in entries
        if entry.action == constants.LEDGER_INFRA_FAILED and entry.to_version == "2"
    ]


def infra_tag(registry: Registry, version: str) -> str:
    name = registry.config.registry.model_name
    return registry.client().get_model_version(name, version).tags[constants.TAG_INFRA_VALIDATION]


def test_a_version_that_cannot_load_or_loses_accuracy_as_served_gets_no_traffic(
    two_versions: Registry, tmp_path: Path
) -> None:
    two_versions.set_canary_percent(100)  # were v2 routed at all, every caller would reach it
    weights = weights_of(two_versions, "2")

    # 1. v2's weights are gone: loading fails, the champion serves everyone.
    hidden = weights.rename(weights.with_suffix(".hidden"))
    gateway = start_gateway(two_versions.config_file, tmp_path)
    try:
        health = httpx.get(f"{gateway.url}/healthz").json()
        assert health["champion"] == "1" and health["canary"] is None
        assert health["infra_validation"]["1"].startswith("passed: accuracy")
        assert health["infra_validation"]["2"].startswith("failed: could not load")
        assert health["serving"] == {"device": "cpu", "precision": "fp32"}
        assert answered_versions(gateway, 20) == {"1"}
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'bertloop_infra_validation_passed{model_version="2"} 0.0' in metrics
        assert 'bertloop_serving_plan{device="cpu",precision="fp32"} 1.0' in metrics
    finally:
        gateway.stop()
        hidden.rename(weights)
    assert any(summary.startswith("could not load") for summary in refusals(two_versions))

    # 2. v2 loads, but its stored sample says it was right on every row at evaluation, and as served
    #    it is wrong on every row (each golden label is moved off what v2 answers): a precision loss.
    sample_file = sample_of(two_versions, "2")
    original = sample_file.read_text()
    sample = json.loads(original)
    sample["labels"] = [LABELS[(LABELS.index(answer) + 1) % len(LABELS)] for answer in sample["predicted"]]
    sample["predicted"] = sample["labels"]
    sample_file.write_text(json.dumps(sample))
    gateway = start_gateway(two_versions.config_file, tmp_path)
    try:
        assert answered_versions(gateway, 20) == {"1"}
        health = httpx.get(f"{gateway.url}/healthz").json()
        assert "more than serving.max_precision_drop" in health["infra_validation"]["2"]
    finally:
        gateway.stop()
        sample_file.write_text(original)
    assert infra_tag(two_versions, "2").startswith("failed: accuracy 0.00% in cpu/fp32")
    assert any("max_precision_drop" in summary for summary in refusals(two_versions))

    # 3. The canary fails closed at once on the refusal, instead of waiting out its step timeout.
    outcome = run_canary(two_versions.config, sleep=lambda seconds: None)
    assert outcome["outcome"] == "rolled_back"
    assert "the gateway refused v2 in infra validation" in outcome["reasons"][0]
    assert two_versions.canary_percent() == 0


def test_a_version_whose_stored_sample_is_unreadable_is_refused_and_the_champion_serves(
    two_versions: Registry,
) -> None:
    from serving.watcher import RegistryWatcher

    two_versions.set_alias(constants.CHALLENGER_ALIAS, "2")
    sample_file = sample_of(two_versions, "2")
    original = sample_file.read_text()
    sample_file.write_text("{not json")
    try:
        watcher = RegistryWatcher(two_versions.config)
        first = watcher.refresh()  # the champion first, alone
        assert first.champion is not None and first.champion.version == "1" and watcher.pending == ["2"]
        second = watcher.refresh()
    finally:
        sample_file.write_text(original)
    assert second.champion is first.champion and second.canary is None
    assert watcher.refused["2"].reason.startswith("could not be proved: ")
    assert "is not a readable infra-validation sample" in watcher.refused["2"].reason
    assert infra_tag(two_versions, "2").startswith("failed: could not be proved")


def test_loading_proving_and_answering_all_run_torch_on_the_one_inference_thread(
    two_versions: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second thread running torch (the loading thread casting a version to bf16, say) leaves an
    OpenMP pool behind, and past one thread a core libgomp parks idle threads instead of letting them
    spin: every later pass ran 1.4x slower. So the gateway quantises or casts, proves and answers on
    one thread, while the registry is read on another. int8 here, which every CPU runs."""
    import asyncio
    import gc
    import threading

    import torch

    from bertloop.core.stores.predictions import PredictionLog
    from serving.app import Gateway
    from serving.models import ServedModel
    from serving.watcher import RegistryWatcher

    two_versions.set_alias(constants.CHAMPION_ALIAS, "1")
    two_versions.set_alias(constants.CHALLENGER_ALIAS, "2")
    base = two_versions.config
    config = base.model_copy(
        update={"serving": base.serving.model_copy(update={"precision": "int8", "max_precision_drop": 1.0})}
    )
    seen: dict[str, set[str]] = {"quantised": set(), "scored": set()}
    quantise, predict = torch.ao.quantization.quantize_dynamic, ServedModel.predict

    def recording_quantise(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["quantised"].add(threading.current_thread().name)
        return quantise(*args, **kwargs)

    def recording_predict(self, texts):  # type: ignore[no-untyped-def]
        seen["scored"].add(threading.current_thread().name)
        return predict(self, texts)

    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", recording_quantise)
    monkeypatch.setattr(ServedModel, "predict", recording_predict)

    async def serve_both_versions() -> list[str]:
        log = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
        gateway = Gateway(config, RegistryWatcher(config), log, b"secret")
        gateway.batcher.start()
        try:
            await gateway.refresh()  # the champion, loaded and proved
            await gateway.refresh()  # the challenger
            state = gateway.routing
            assert state.champion is not None and state.canary is not None
            assert state.champion.runner.plan.quantized
            answers = [
                *await gateway.batcher.submit(state.champion, ["goal match"]),
                *await gateway.batcher.submit(state.canary, ["goal match"], background=True),
            ]
        finally:
            await gateway.batcher.stop()
            log.close()
            gc.unfreeze()  # the routing change froze the heap; the rest of the session must not inherit it
        return [answer.label for answer in answers]

    assert all(label in LABELS for label in asyncio.run(serve_both_versions()))
    threads = {name for names in seen.values() for name in names}
    assert seen["quantised"] and seen["scored"]
    assert len(threads) == 1 and next(iter(threads)).startswith("inference"), seen


@pytest.mark.parametrize("stops_during", ["loading", "proving"])
def test_a_gateway_stopping_while_a_version_loads_records_no_verdict_on_it(
    two_versions: Registry, stops_during: str
) -> None:
    from serving.batching import InferenceStopped
    from serving.watcher import RegistryWatcher

    def stopping(work, *args):  # type: ignore[no-untyped-def]
        proving = getattr(work, "__name__", "") == "predict"
        if stops_during == "loading" or proving:
            raise InferenceStopped("the gateway is stopping")
        return work(*args)

    name = two_versions.config.registry.model_name
    two_versions.set_alias(constants.CHAMPION_ALIAS, "1")
    two_versions.client().set_model_version_tag(name, "1", constants.TAG_INFRA_VALIDATION, "untouched")
    ledger = Ledger(two_versions.config.ledger_url)
    before = len(ledger.entries(name))
    watcher = RegistryWatcher(two_versions.config)
    with pytest.raises(InferenceStopped):
        watcher.refresh(stopping)
    assert watcher.verdicts == {} and infra_tag(two_versions, "1") == "untouched"
    assert len(ledger.entries(name)) == before
    assert watcher.refresh().champion is not None  # tried again at the next refresh, and served
    assert infra_tag(two_versions, "1").startswith("passed")
