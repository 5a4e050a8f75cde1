"""The golden sample stored with a version for infra validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling import infra_sample


def test_the_sample_is_seeded_aligned_and_no_larger_than_asked() -> None:
    texts = [f"text {i}" for i in range(50)]
    labels = [f"label {i % 3}" for i in range(50)]
    predicted = [f"label {(i + (i % 5 == 0)) % 3}" for i in range(50)]  # wrong on every fifth row
    first = infra_sample.draw(texts, labels, predicted, 20, seed=7)
    assert first == infra_sample.draw(texts, labels, predicted, 20, seed=7)
    assert first != infra_sample.draw(texts, labels, predicted, 20, seed=8)
    assert len(first.texts) == 20 and len(set(first.texts)) == 20
    for text, label, answer in zip(first.texts, first.labels, first.predicted, strict=True):
        row = texts.index(text)
        assert (label, answer) == (labels[row], predicted[row])
    everything = infra_sample.draw(texts, labels, predicted, 500)
    assert everything.texts == texts and everything.accuracy == pytest.approx(0.8)


def test_a_stored_sample_reads_back_and_a_broken_one_is_named(tmp_path: Path) -> None:
    sample = infra_sample.draw(["a", "b"], ["x", "y"], ["x", "x"], 2)
    path = infra_sample.save(sample, tmp_path / "infra-sample.json")
    assert infra_sample.load(path) == sample and infra_sample.load(path).accuracy == 0.5
    path.write_text('{"texts": ["a"], "labels": [], "predicted": []}')
    with pytest.raises(ValueError, match=r"infra-sample\.json is not a readable infra-validation sample"):
        infra_sample.load(path)
