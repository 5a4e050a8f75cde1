"""Calibration error, temperature fitting, and the runner applying a model's temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeling import calibration


def test_ece_is_near_zero_when_confidence_matches_accuracy_and_large_when_it_does_not() -> None:
    generator = np.random.default_rng(0)
    confidence = generator.uniform(0.3, 1.0, 20_000)
    honest = generator.random(20_000) < confidence
    assert calibration.expected_calibration_error(confidence, honest) < 0.02
    overconfident = generator.random(20_000) < 0.6
    assert calibration.expected_calibration_error(np.full(20_000, 0.9), overconfident) == pytest.approx(
        0.3, abs=0.02
    )
    bins = calibration.reliability_bins([0.0, 0.05, 1.0], [False, True, True], bins=10)
    assert [(b.count, b.accuracy) for b in bins] == [(2, 0.5), (1, 1.0)]  # 0 joins the first bin
    with pytest.raises(ValueError, match="no predictions"):
        calibration.expected_calibration_error([], [])


def test_fit_temperature_recovers_a_known_temperature() -> None:
    from scipy.special import softmax

    generator = np.random.default_rng(1)
    logits = generator.normal(0, 3, (8000, 4))
    labels = [generator.choice(4, p=row) for row in softmax(logits / 2.5, axis=1)]
    assert calibration.fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.08)
    with pytest.raises(ValueError, match="do not match"):
        calibration.fit_temperature(logits, labels[:-1])
    sharp = [generator.choice(4, p=row) for row in softmax(logits / 0.5, axis=1)]
    assert calibration.fit_temperature(logits, sharp) == pytest.approx(0.5, rel=0.08)  # errors enough


def test_a_split_the_model_answers_all_right_cannot_sharpen_it() -> None:
    # Every row right: the likelihood keeps falling as T shrinks, and the unguarded fit sat on the
    # lower bound (T = 0.05, every later answer ~100% confident at 92% accuracy, in the demo).
    generator = np.random.default_rng(2)
    labels = generator.integers(0, 5, 30)
    logits = generator.normal(0, 1, (30, 5))
    logits[np.arange(30), labels] += 4.0
    assert (logits.argmax(axis=1) == labels).all()
    assert calibration.fit_temperature(logits, labels) == pytest.approx(1.0, abs=1e-3)
    wrong = labels.copy()
    wrong[:4] = (labels[:4] + 1) % 5  # four errors: still too few to sharpen on
    assert calibration.fit_temperature(logits, wrong) >= 1.0


def test_a_corrupt_stored_temperature_is_refused() -> None:
    class Config:
        bertloop_temperature = -3.0

    with pytest.raises(ValueError, match="outside"):
        calibration.temperature_of(Config())
    assert calibration.temperature_of(object()) == 1.0


def test_the_runner_divides_the_logits_by_the_models_temperature(tiny_checkpoint: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from modeling.runner import ClassifierRunner

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    texts = ["goal match team", "market shares bank", "vote election"]
    plain = ClassifierRunner.from_components(model, tokenizer, 32).score(texts)
    model.config.bertloop_temperature = 0.5
    sharp = ClassifierRunner.from_components(model, tokenizer, 32).score(texts)
    assert np.allclose(plain.logits, sharp.logits)  # the raw logits are what the model said
    expected = torch.tensor(sharp.logits / 0.5).softmax(-1).max(-1).values.numpy()
    assert sharp.confidences == pytest.approx(expected.tolist(), abs=1e-6)
    assert sharp.labels == plain.labels  # a temperature never changes the winning label
    assert all(s >= p for s, p in zip(sharp.confidences, plain.confidences, strict=True))
