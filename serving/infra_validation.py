"""Infra validation: a version proves, in the gateway's own precision and batching, that it answers as
it did at evaluation before it is routed a single request (TFX's InfraValidator, inside the gateway).

:func:`judge` is the pure verdict: the version's accuracy on the stored golden
sample, as served, against its fp32 accuracy on the same rows at evaluation.
:func:`prove` runs the version over the sample in the passes the micro-batcher
would make, so loading, warm-up and the serving arithmetic are all exercised;
an exception anywhere is a failed verdict, never a crash of the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bertloop.core import constants
from modeling.infra_sample import InfraSample
from modeling.runner import Compute, inline
from serving.batching import estimate_tokens, texts_per_pass
from serving.models import ServedModel

WARMUP_TEXT = "warm-up"


@dataclass(frozen=True)
class InfraVerdict:
    passed: bool
    reason: str
    precision: str
    accuracy: float | None = None  # on the sample, as served
    reference_accuracy: float | None = None  # on the same rows at evaluation (fp32)
    agreement: float | None = None  # share of the sample answered as at evaluation
    rows: int = 0

    @property
    def tag(self) -> str:
        """The version tag: ``passed: ...`` or ``failed: ...``."""
        return f"{constants.INFRA_PASSED if self.passed else constants.INFRA_FAILED}: {self.reason}"

    def evidence(self) -> dict[str, object]:
        return {
            "summary": self.reason, "precision": self.precision, "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy, "agreement": self.agreement, "rows": self.rows,
        }  # fmt: skip


def judge(sample: InfraSample, served: Sequence[str], precision: str, max_drop: float) -> InfraVerdict:
    """Pass when accuracy as served is at most ``max_drop`` below the fp32 accuracy on the same rows."""
    rows = len(sample.texts)
    if len(served) != rows:
        return InfraVerdict(False, f"answered {len(served)} of {rows} sample texts", precision, rows=rows)
    accuracy = sum(a == t for a, t in zip(served, sample.labels, strict=True)) / rows
    agreement = sum(a == p for a, p in zip(served, sample.predicted, strict=True)) / rows
    reference = sample.accuracy
    figures = (
        f"accuracy {accuracy:.2%} in {precision} on {rows} golden rows against {reference:.2%} in "
        f"{sample.precision} at evaluation ({agreement:.1%} of answers the same)"
    )
    drop = reference - accuracy
    if drop > max_drop + 1e-12:
        return InfraVerdict(
            False, f"{figures}: {drop:.2%} lower, more than serving.max_precision_drop {max_drop:.2%}",
            precision, accuracy, reference, agreement, rows,
        )  # fmt: skip
    return InfraVerdict(True, figures, precision, accuracy, reference, agreement, rows)


def prove(
    model: ServedModel,
    sample: InfraSample | None,
    max_count: int,
    max_tokens: int,
    max_drop: float,
    compute: Compute = inline,
) -> InfraVerdict:
    """Score ``sample`` (or, without one, a warm-up text) through ``model`` as the gateway batches it,
    each pass through ``compute`` (in the gateway, between the passes that answer requests)."""
    precision = model.runner.plan.describe()
    try:
        if sample is None or not sample.texts:
            compute(model.predict, [WARMUP_TEXT])
            return InfraVerdict(True, "warm-up only: no golden sample is stored with this version", precision)
        answers: list[str] = []
        estimates = [estimate_tokens(text, model.runner.max_length) for text in sample.texts]
        start = 0
        while start < len(sample.texts):
            count = texts_per_pass(estimates[start:], max_count, max_tokens)
            answers.extend(p.label for p in compute(model.predict, sample.texts[start : start + count]))
            start += count
    except Exception as error:  # any failure to answer is the verdict, and the gateway keeps serving
        return InfraVerdict(False, f"scoring the sample raised {type(error).__name__}: {error}", precision)
    return judge(sample, answers, precision, max_drop)


def load_failed(error: BaseException, precision: str) -> InfraVerdict:
    return InfraVerdict(False, f"could not load: {type(error).__name__}: {error}"[:2000], precision)
