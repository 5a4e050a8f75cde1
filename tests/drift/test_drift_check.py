"""A drift check end to end on a real registry and prediction log: no shift, a shift, storm control."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core.config import PlatformConfig
from bertloop.core.stores.drift_history import DriftHistory
from bertloop.core.stores.predictions import PredictionLog, PredictionRow
from bertloop.pipeline.steps import training_texts
from drift.check import CheckOutcome, run_check
from serving.models import load_from_registry
from tests.conftest import Registry, synthetic_rows

NEW_TOPIC = [
    "weather",
    "rain",
    "storm",
    "forecast",
    "sunny",
    "cloudy",
    "flood",
    "drought",
    "wind",
    "snow",
    "heatwave",
    "frost",
]


def _log_window(
    config: PlatformConfig,
    texts: list[str],
    truths: list[str] | None,
    now: float,
    given_by: str | None = None,
    version: str = "1",
    embeddings: bool = False,
) -> None:
    """Log ``texts`` as answered by ``version``: as the gateway does now (with its embeddings), or as
    it did before embeddings were stored (none)."""
    served = load_from_registry(config, version)
    predictions = served.predict(texts)
    log = PredictionLog(config.prediction_log_url)
    ids = []
    rows = []
    for offset, (text, prediction) in enumerate(zip(texts, predictions, strict=True)):
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        rows.append(
            PredictionRow(request_id, now - 60 + offset * 0.01, "c", version, "champion", "ok", 10.0,
                          prediction.label, prediction.confidence, text=text,
                          embedding=prediction.embedding if embeddings else None)
        )  # fmt: skip
    log.record(rows)
    for index, (request_id, truth) in enumerate(zip(ids, truths or [], strict=False)):
        log.add_feedback(request_id, truth, given_by=given_by or f"labeller-{index % 3}", now=time.time())
    log.close()


@pytest.fixture
def drift_config(two_versions: Registry) -> PlatformConfig:
    return two_versions.config.model_copy(
        update={
            "drift": two_versions.config.drift.model_copy(
                update={"min_window_size": 60, "reference_size": 120, "embedding_sample": 120,
                        "permutations": 100, "min_feedback": 20, "window_minutes": 5}
            ),
            "validation": two_versions.config.validation,
        }
    )  # fmt: skip


def check(config: PlatformConfig, now: float) -> CheckOutcome:
    return run_check(config, lambda version: training_texts(config, version), now=now)


def timeline(config: PlatformConfig) -> pd.DataFrame:
    return DriftHistory(config.ledger_url).timeline()


def test_no_shift_no_alarm_then_shift_triggers_once(drift_config: PlatformConfig) -> None:
    start = time.time() + 100_000  # a window of its own, clear of other tests' rows
    steady = synthetic_rows(30, seed=77)  # the training distribution: 90 texts
    _log_window(drift_config, steady["text"].tolist(), steady["label"].tolist(), start)
    quiet = check(drift_config, now=start)
    assert quiet.window_size == 90
    assert not quiet.confirmed and not quiet.triggered, quiet
    assert quiet.report and json.loads(Path(quiet.report).read_text())["signals"]

    generator = random.Random(5)
    drifted = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(90)]
    _log_window(drift_config, drifted, ["sport"] * 90, start + 600)
    alarm = check(drift_config, now=start + 600)
    assert alarm.confirmed and {"embedding_mmd", "unknown_tokens"} <= set(alarm.fired), alarm
    assert alarm.triggered and alarm.data_path and alarm.report
    exported = pd.read_csv(alarm.data_path)
    assert set(exported.columns) == {"text", "label"} and len(exported) >= 90
    html = Path(alarm.report).with_suffix(".html").read_text()
    assert "embedding_mmd" in html and "Evidently data drift report" in html

    again = check(drift_config, now=start + 660)  # same drift, same feedback: storm control holds
    assert again.confirmed and not again.triggered
    assert "already used" in again.reason or "cooldown" in again.reason
    history = timeline(drift_config)
    assert list(history["triggered"].tail(3)) == [False, True, False]

    # The demo's timeline picture is drawn from the same table.
    from PIL import Image

    from demo.drift import plot_timeline

    picture = plot_timeline(drift_config, drift_config.workspace / "timeline.png", [(2, "retrain")])
    assert Image.open(picture).size[0] > 500


def test_logged_embeddings_give_the_verdict_recomputed_ones_give(drift_config: PlatformConfig) -> None:
    """The same windows, logged once with the gateway's embeddings and once without (rows from before
    embeddings were stored, which the check embeds itself): the same signals and the same verdicts."""
    # Both passes against the training reference: the first pass's rows would otherwise complete a
    # live baseline for the second.
    config = drift_config.model_copy(
        update={"drift": drift_config.drift.model_copy(update={"baseline_size": 0})}
    )
    generator = random.Random(11)
    drifted = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(90)]
    steady = synthetic_rows(30, seed=78)
    verdicts = {}
    for offset, embeddings in ((300_000, True), (400_000, False)):
        start = time.time() + offset
        _log_window(config, steady["text"].tolist(), None, start, embeddings=embeddings)
        quiet = check(config, now=start)
        _log_window(config, drifted, None, start + 600, embeddings=embeddings)
        shifted = check(config, now=start + 600)
        verdicts[embeddings] = (quiet, shifted)
    for logged, recomputed in zip(verdicts[True], verdicts[False], strict=True):
        assert (logged.level, logged.confirmed, logged.fired) == (
            recomputed.level, recomputed.confirmed, recomputed.fired,
        )  # fmt: skip
        assert logged.drift_score == pytest.approx(recomputed.drift_score, rel=1e-3, abs=1e-4)
    quiet, shifted = verdicts[True]
    assert quiet.level == "none" and "embedding_mmd" in shifted.fired


def test_feedback_dominated_by_one_key_is_quarantined_not_retrained_on(
    drift_config: PlatformConfig, tmp_path: Path
) -> None:
    # A ledger of its own: storm control has seen no earlier trigger, so only the screen can stop this.
    config = drift_config.model_copy(
        update={
            "canary": drift_config.canary.model_copy(update={"ledger_url": f"sqlite:///{tmp_path / 'l.db'}"})
        }
    )
    start = time.time() + 300_000
    generator = random.Random(9)
    drifted = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" poisoned {i}" for i in range(400)]
    _log_window(config, drifted, ["sport"] * 400, start, given_by="mallory")
    outcome = check(config, now=start)
    assert outcome.confirmed and not outcome.triggered and outcome.data_path is None, outcome
    assert "quarantine" in outcome.reason and "'mallory' gave 400" in outcome.reason
    folder = config.workspace / "quarantine" / f"drift-feedback-{outcome.snapshot[:12]}"
    assert (folder / "report.md").is_file() and (folder / "poisoning_evidence.json").is_file()


def test_too_small_a_window_gives_no_verdict(drift_config: PlatformConfig) -> None:
    outcome = check(drift_config, now=time.time() + 500_000)
    assert outcome.window_size == 0 and not outcome.confirmed
    assert "no verdict below 60" in outcome.reason


def test_the_cli_runs_a_check_and_lists_the_history(
    drift_config: PlatformConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from bertloop.pipeline.cli import main

    config_file = tmp_path / "bertloop.yaml"
    config_file.write_text(yaml.safe_dump(drift_config.model_dump(mode="json")))
    assert main(["--config", str(config_file), "drift"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["champion"] == "1" and outcome["triggered"] is False
    assert "no verdict below 60" in outcome["reason"]

    assert main(["--config", str(config_file), "drift", "--history"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("time (UTC)") and len(table) == len(timeline(drift_config)) + 1
    assert "quiet: 0 predictions in the window; no verdict below 60" in table[-1]


def _isolated(drift_config: PlatformConfig, tmp_path: Path) -> PlatformConfig:
    """The module's registry with a prediction log and ledger of this test's own."""
    return drift_config.model_copy(
        update={
            "drift": drift_config.drift.model_copy(update={"baseline_size": 60, "min_window_size": 60}),
            "serving": drift_config.serving.model_copy(
                update={"prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}"}
            ),
            "canary": drift_config.canary.model_copy(
                update={"ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}"}
            ),
        }
    )


def test_a_new_champion_gets_its_own_baseline_not_its_predecessors(
    drift_config: PlatformConfig, two_versions: Registry, tmp_path: Path
) -> None:
    """After a (drift-triggered) retrain, v2 is judged against its own answers, never v1's traffic."""
    from bertloop.core import constants
    from bertloop.core.stores.ledger import Ledger

    config = _isolated(drift_config, tmp_path)
    ledger = Ledger(config.ledger_url)
    name = config.registry.model_name
    ledger.append("test", "promote", name, constants.CHAMPION_ALIAS, None, "1")
    start = time.time() + 7000
    old = synthetic_rows(20, seed=95)
    _log_window(config, old["text"].tolist(), old["label"].tolist(), start)
    steady = synthetic_rows(30, seed=96)
    _log_window(config, steady["text"].tolist(), steady["label"].tolist(), start + 600)
    assert check(config, now=start + 600).reference.startswith("live baseline of v1")  # type: ignore[union-attr]

    ledger.append("test", "promote", name, constants.CHAMPION_ALIAS, "1", "2")
    two_versions.set_alias(constants.CHAMPION_ALIAS, "2")
    try:
        generator = random.Random(4)
        drifted = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(60)]
        _log_window(config, drifted, None, start + 1200, version="2")  # the new traffic, no feedback yet
        forming = check(config, now=start + 1200)
        assert forming.champion == "2"
        assert forming.reference and forming.reference.startswith("training texts of v2, reweighted")
        more = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(60, 150)]
        _log_window(config, more, None, start + 1800, version="2")
        settled = check(config, now=start + 1800)
        # v2's own first answers (the new traffic) are its baseline: the same traffic is no drift.
        assert settled.reference and settled.reference.startswith("live baseline of v2")
        assert not settled.confirmed and not settled.triggered, settled
    finally:
        two_versions.set_alias(constants.CHAMPION_ALIAS, "1")


def test_the_champions_live_baseline_becomes_its_reference_once_complete(
    drift_config: PlatformConfig, tmp_path: Path
) -> None:
    from bertloop.core import constants
    from bertloop.core.stores.ledger import Ledger

    config = drift_config.model_copy(
        update={
            "drift": drift_config.drift.model_copy(update={"baseline_size": 60, "min_window_size": 60}),
            "serving": drift_config.serving.model_copy(
                update={"prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}"}
            ),
            "canary": drift_config.canary.model_copy(
                update={"ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}"}
            ),
        }
    )
    Ledger(config.ledger_url).append(
        "test", "promote", config.registry.model_name, constants.CHAMPION_ALIAS, None, "1"
    )
    start = time.time() + 1000
    first = synthetic_rows(20, seed=91)
    _log_window(config, first["text"].tolist(), first["label"].tolist(), start)
    forming = check(config, now=start)  # the 60 answers are the baseline itself: not yet a reference
    assert forming.reference and forming.reference.startswith("training texts of v1, reweighted")

    steady = synthetic_rows(30, seed=92)
    _log_window(config, steady["text"].tolist(), steady["label"].tolist(), start + 600)
    quiet = check(config, now=start + 600)
    assert quiet.reference and quiet.reference.startswith("live baseline of v1: its first 60 answers")
    assert not quiet.confirmed and not quiet.triggered, quiet
    report = json.loads(Path(quiet.report or "").read_text())
    assert report["reference"] == quiet.reference and "label_distribution" in {
        s["name"] for s in report["signals"]
    }

    generator = random.Random(9)
    drifted = [" ".join(generator.sample(NEW_TOPIC, 6)) + f" {i}" for i in range(90)]
    _log_window(config, drifted, ["unheard-of"] * 90, start + 1200)  # feedback: every answer wrong
    alarm = check(config, now=start + 1200)
    assert alarm.confirmed and alarm.level == "confirmed" and "harm shown by accuracy" in alarm.reason, (
        alarm.signals
    )
    assert alarm.reference == quiet.reference  # the same baseline, cached per promotion
    history = timeline(config)
    assert len(history) == 3 and history["level"].iloc[-1] == "confirmed"
    assert history["reference"].iloc[-1] == quiet.reference


def test_a_baseline_whose_live_accuracy_is_below_the_golden_sets_is_refused(
    drift_config: PlatformConfig, tmp_path: Path
) -> None:
    from bertloop.core import constants
    from bertloop.core.stores.ledger import Ledger

    config = drift_config.model_copy(
        update={
            "drift": drift_config.drift.model_copy(update={"baseline_size": 60, "min_window_size": 60}),
            "serving": drift_config.serving.model_copy(
                update={"prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}"}
            ),
            "canary": drift_config.canary.model_copy(
                update={"ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}"}
            ),
        }
    )
    Ledger(config.ledger_url).append(
        "test", "promote", config.registry.model_name, constants.CHAMPION_ALIAS, None, "1"
    )
    start = time.time() + 3000
    first = synthetic_rows(20, seed=93)
    _log_window(config, first["text"].tolist(), ["unheard-of"] * len(first), start)  # all answers wrong
    steady = synthetic_rows(30, seed=94)
    _log_window(config, steady["text"].tolist(), steady["label"].tolist(), start + 600)
    outcome = check(config, now=start + 600)
    assert outcome.reference and outcome.reference.startswith("training texts of v1, reweighted")
    # ... and the check says why the baseline is not its reference.
    refused = "live baseline refused: the baseline's live accuracy is below the golden set's"
    assert refused in outcome.reference
