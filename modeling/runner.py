"""The one model runner: a fine-tuned classifier on its device, scoring texts in batches.

Evaluation scores the golden set with it, the gateway answers requests with it,
and drift checks compute embeddings with it. Where it runs (device, precision)
comes from :mod:`modeling.hardware`, never from the caller's own guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from modeling.calibration import temperature_of
from modeling.hardware import HardwarePlan, inference_plan

# Batches are padded to a multiple of this many word pieces (where max_length is one), so the
# encoder sees a few shapes again and again: oneDNN reuses its kernels for a shape it has run,
# and a new shape costs a fresh one (measured with bf16 on a 2-core Xeon: +10% texts per second
# for BBC articles at max_length 128, and fewer slow passes).
LENGTH_BUCKET = 32


T = TypeVar("T")


class Compute(Protocol):
    """Runs ``work(*args)`` and returns its result, wherever the caller wants torch to run (the
    gateway: its one inference thread); :func:`inline` runs it on the calling thread."""

    def __call__(self, work: Callable[..., T], *args: Any) -> T: ...


def inline(work: Callable[..., T], *args: Any) -> T:
    """Run ``work(*args)`` on the calling thread."""
    return work(*args)


def _modules_holding_tensors(model: Any) -> list[Any]:
    """The leaf modules that hold parameters or buffers of their own."""
    return [
        module
        for module in model.modules()
        if not list(module.children())
        and (list(module.parameters(recurse=False)) or list(module.buffers(recurse=False)))
    ]


def _parents_of_linear_layers(model: Any) -> list[Any]:
    """The modules that hold a linear layer directly, outermost first."""
    import torch

    return [
        module
        for module in model.modules()
        if any(isinstance(child, torch.nn.Linear) for child in module.children())
    ]


@dataclass(frozen=True)
class Scored:
    """Per text: the winning label, its probability, every label's probability, the raw logits
    (before the temperature), and (if asked) embeddings."""

    labels: list[str]
    confidences: list[float]
    scores: list[dict[str, float]]
    logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    embeddings: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class ClassifierRunner:
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    max_length: int = 128
    plan: HardwarePlan = field(default_factory=lambda: HardwarePlan("cpu", "fp32"))

    @classmethod
    def from_components(
        cls,
        model: Any,
        tokenizer: Any,
        max_length: int,
        plan: HardwarePlan | None = None,
        compute: Compute = inline,
    ) -> ClassifierRunner:
        """Wrap a loaded model, which the runner takes over (it is changed in place): moved to the
        plan's device and put in evaluation mode; with a bf16 or fp16 plan its weights are cast to
        that type once, and with an int8 plan its linear layers are quantised (dynamically: weights
        int8, activations scaled per batch).

        Autocast over fp32 weights casts every linear weight again on every pass and keeps the
        residual stream, layer norms and activations in fp32. Cast once, the whole pass runs in bf16:
        a MiniLM pass of 8 texts x 128 word pieces on a 2-core Xeon took 30 ms instead of 39 (casting
        the linear layers alone: 34-37 ms). The answers move a little (the demo's champion: the same
        200 golden answers, embeddings at cosine >= 0.99996 to fp32's); autocast still wraps the pass,
        so on CUDA layer norm and softmax run in fp32, and the gateway proves every version in its
        serving precision before it is routed a request.

        The work is handed to ``compute`` a layer at a time, so a gateway that runs it on its
        inference thread answers requests between layers instead of stalling for the whole model.
        """
        import torch

        plan = plan or inference_plan()
        model = compute(model.to, plan.device)
        model.eval()
        if plan.autocast:
            dtype = torch.bfloat16 if plan.bf16 else torch.float16
            for holder in _modules_holding_tensors(model):
                compute(holder.to, dtype)
            compute(model.to, dtype)  # what no leaf holds (a no-op for each tensor already cast)
        if plan.quantized:
            quantize = torch.ao.quantization.quantize_dynamic
            for parent in _parents_of_linear_layers(model):
                compute(partial(quantize, parent, {torch.nn.Linear}, dtype=torch.qint8, inplace=True))
        return cls(model=model, tokenizer=tokenizer, max_length=max_length, plan=plan)

    @classmethod
    def from_directory(
        cls, folder: str | Path, max_length: int, plan: HardwarePlan | None = None
    ) -> ClassifierRunner:
        """A model and tokenizer saved with ``save_pretrained``."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        return cls.from_components(model, AutoTokenizer.from_pretrained(str(folder)), max_length, plan)

    @property
    def numerics(self) -> str:
        """How this runner computes, to key caches of what it computed (embeddings, confidences): the
        plan, and for bf16 and fp16 that the weights are cast at load (runners before that autocast
        fp32 weights, which rounds differently)."""
        return self.plan.describe().replace("/", "-") + ("-cast" if self.plan.autocast else "")

    @property
    def temperature(self) -> float:
        """Divides the logits before the softmax; fitted at training time, 1.0 for older models."""
        return temperature_of(self.model.config)

    @property
    def label_names(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[index] for index in range(len(id2label))]

    def score(self, texts: Sequence[str], batch_size: int = 64, embeddings: bool = False) -> Scored:
        """Score ``texts`` in batches; with ``embeddings``, also the mean-pooled last hidden state."""
        import torch

        names = self.label_names
        temperature = self.temperature
        raw: list[np.ndarray] = []
        labels: list[str] = []
        confidences: list[float] = []
        scores: list[dict[str, float]] = []
        pooled: list[np.ndarray] = []
        precision = torch.bfloat16 if self.plan.bf16 else torch.float16
        bucket = LENGTH_BUCKET if self.max_length % LENGTH_BUCKET == 0 else None
        with torch.inference_mode(), torch.autocast(self.plan.device, precision, enabled=self.plan.autocast):
            for start in range(0, len(texts), batch_size):
                encoded = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    pad_to_multiple_of=bucket,
                    return_tensors="pt",
                ).to(self.plan.device)
                outputs = self.model(**encoded, output_hidden_states=embeddings)
                logits = outputs.logits.float()
                raw.append(logits.cpu().numpy())
                probabilities = (logits / temperature).softmax(dim=-1).cpu()
                for row in probabilities.tolist():
                    best = max(range(len(row)), key=row.__getitem__)
                    labels.append(names[best])
                    confidences.append(row[best])
                    scores.append(dict(zip(names, row, strict=True)))
                if embeddings:
                    mask = encoded["attention_mask"].unsqueeze(-1).float()
                    hidden = outputs.hidden_states[-1].float()
                    pooled.append(((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy())
        matrix = (np.vstack(pooled) if pooled else np.zeros((0, 1))) if embeddings else None
        logit_matrix = np.vstack(raw) if raw else np.zeros((0, len(names)), dtype=np.float32)
        return Scored(labels, confidences, scores, logits=logit_matrix, embeddings=matrix)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each whole text, untruncated and without special tokens."""
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
