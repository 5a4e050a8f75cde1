"""The runner in each serving precision: int8 quantises the linear layers, bf16 casts the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeling.hardware import HardwarePlan
from modeling.runner import ClassifierRunner
from tests.conftest import synthetic_rows

TEXTS = synthetic_rows(4, seed=3)["text"].tolist()


@pytest.fixture(scope="module")
def fp32(tiny_checkpoint: Path) -> ClassifierRunner:
    return ClassifierRunner.from_directory(tiny_checkpoint, 32, HardwarePlan("cpu", "fp32"))


def test_int8_quantises_every_linear_layer_and_scores_close_to_fp32(
    tiny_checkpoint: Path, fp32: ClassifierRunner
) -> None:
    import torch

    int8 = ClassifierRunner.from_directory(tiny_checkpoint, 32, HardwarePlan("cpu", "int8"))
    kinds = {type(module) for module in int8.model.modules()}
    assert torch.nn.Linear not in kinds  # every one replaced
    assert torch.ao.nn.quantized.dynamic.Linear in kinds
    exact, quantised = fp32.score(TEXTS, embeddings=True), int8.score(TEXTS, embeddings=True)
    assert quantised.logits.shape == exact.logits.shape
    assert np.allclose(quantised.logits, exact.logits, atol=0.05)  # int8 rounds, it does not break
    assert quantised.embeddings is not None and quantised.embeddings.shape == exact.embeddings.shape  # type: ignore[union-attr]


def test_bf16_casts_every_weight_at_load_scores_in_bf16_and_returns_fp32_numbers(
    tiny_checkpoint: Path, fp32: ClassifierRunner
) -> None:
    import torch

    bf16 = ClassifierRunner.from_directory(tiny_checkpoint, 32, HardwarePlan("cpu", "bf16"))
    # Cast at load, not by autocast on every pass: no fp32 weight is left to cast.
    assert {parameter.dtype for parameter in bf16.model.parameters()} == {torch.bfloat16}
    assert bf16.numerics == "cpu-bf16-cast" and fp32.numerics == "cpu-fp32"  # drift caches keep apart
    exact, rounded = fp32.score(TEXTS, embeddings=True), bf16.score(TEXTS, embeddings=True)
    assert rounded.embeddings is not None and rounded.embeddings.dtype == np.float32
    assert rounded.logits.dtype == np.float32
    assert not np.array_equal(rounded.logits, exact.logits)  # it did run in lower precision
    assert np.allclose(rounded.logits, exact.logits, atol=0.05)
    assert all(abs(sum(scores.values()) - 1) < 1e-4 for scores in rounded.scores)


def put_on_plan_step_by_step(checkpoint: Path, tokenizer: object, precision: str):  # type: ignore[no-untyped-def]
    """A fresh model put on ``precision`` through a recording ``compute``: the runner, the work handed
    over, and the model's leaf modules with weights and the modules holding linear layers, counted
    before."""
    import torch
    from transformers import AutoModelForSequenceClassification

    steps: list[object] = []

    def recording(work, *args):  # type: ignore[no-untyped-def]
        steps.append(work)
        return work(*args)

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint))
    leaves = [m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    holders = [m for m in model.modules() if any(isinstance(c, torch.nn.Linear) for c in m.children())]
    runner = ClassifierRunner.from_components(
        model, tokenizer, 32, HardwarePlan("cpu", precision), compute=recording
    )
    return runner, steps, len(leaves), len(holders)


def test_a_bf16_model_is_cast_a_layer_at_a_time_through_compute(
    tiny_checkpoint: Path, fp32: ClassifierRunner
) -> None:
    """A gateway hands each step to its inference thread, so requests are answered between layers."""
    runner, steps, leaves, _ = put_on_plan_step_by_step(tiny_checkpoint, fp32.tokenizer, "bf16")
    assert leaves > 3 and len(steps) == 2 + leaves  # the device move, one step per layer, the rest
    assert runner.score(TEXTS).labels == fp32.score(TEXTS).labels


def test_an_int8_model_is_quantised_a_module_at_a_time_through_compute(
    tiny_checkpoint: Path, fp32: ClassifierRunner
) -> None:
    import torch

    runner, steps, leaves, holders = put_on_plan_step_by_step(tiny_checkpoint, fp32.tokenizer, "int8")
    assert 1 < holders < leaves and len(steps) == 1 + holders  # attention's q, k, v go in one step
    kinds = {type(module) for module in runner.model.modules()}
    assert torch.nn.Linear not in kinds and torch.ao.nn.quantized.dynamic.Linear in kinds
    assert runner.score(TEXTS).logits.shape == fp32.score(TEXTS).logits.shape


def test_batches_are_padded_to_the_length_bucket_without_changing_an_answer(
    tiny_checkpoint: Path, fp32: ClassifierRunner
) -> None:
    from modeling.runner import LENGTH_BUCKET

    seen: list[int] = []
    forward = fp32.model.forward

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(int(kwargs["input_ids"].shape[1]))
        return forward(*args, **kwargs)

    short = ["a few words", "fewer"]
    alone = [fp32.score([text], batch_size=1) for text in short]  # each padded to the bucket
    fp32.model.forward = recording
    try:
        together = fp32.score(short, batch_size=2, embeddings=True)
        unbucketed = ClassifierRunner(fp32.model, fp32.tokenizer, 30, fp32.plan).score(short, batch_size=2)
    finally:
        del fp32.model.forward
    assert seen[0] == LENGTH_BUCKET  # max_length 32 is a multiple: the 5-piece batch is padded to 32
    assert seen[1] < LENGTH_BUCKET  # max_length 30 is not: padded to the longest text only
    assert together.labels == [one.labels[0] for one in alone] == unbucketed.labels
    assert np.allclose(together.logits, np.vstack([one.logits for one in alone]), atol=1e-5)
    assert np.allclose(together.logits, unbucketed.logits, atol=1e-5)
