"""Issue 16, item 2: the drift check's confidence signals (CBPE among them) read calibrated confidences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_the_drift_features_carry_the_confidences_after_the_models_temperature(
    tiny_checkpoint: Path,
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from drift.features import featurize
    from modeling.runner import ClassifierRunner

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_checkpoint))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    texts = ["goal match team", "market shares bank", "vote election", "film actor award"]
    model.config.bertloop_temperature = 3.0  # what training stores after fitting it
    runner = ClassifierRunner.from_components(model, tokenizer, 32)
    features = featurize(runner, texts)
    logits = runner.score(texts).logits
    calibrated = torch.tensor(logits / 3.0).softmax(-1).max(-1).values.numpy()
    raw = torch.tensor(logits).softmax(-1).max(-1).values.numpy()
    # The reference's (and the golden set's) confidences are the calibrated ones, as the gateway logs.
    assert features.confidences == pytest.approx(calibrated, abs=1e-6)
    assert not np.allclose(features.confidences, raw)
