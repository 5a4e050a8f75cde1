"""The micro-batcher: shared passes, and answers before background work."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modeling.runner import ClassifierRunner
from serving.batching import MicroBatcher
from serving.models import Prediction, ServedModel


class RecordingModel:
    """Stands in for a served model: records each pass, takes a little time."""

    version = "test"
    max_length = 128

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.threads: set[str] = set()

    def predict(self, texts):
        self.passes.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(0.02)
        return [Prediction(label=text, confidence=1.0, scores={text: 1.0}) for text in texts]


def test_concurrent_requests_share_passes_and_answers_go_first() -> None:
    model = RecordingModel()

    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=8, max_wait_ms=20)
        batcher.start()
        background = asyncio.create_task(
            batcher.submit(model, [f"mirror{i}" for i in range(8)], background=True)
        )
        answers = [asyncio.create_task(batcher.submit(model, [f"answer{i}"])) for i in range(8)]
        results = await asyncio.gather(*answers)
        assert [r[0].label for r in results] == [f"answer{i}" for i in range(8)]
        await background
        await batcher.stop()

    asyncio.run(scenario())
    # Eight answers in one pass, and that pass ran before the mirrored texts queued earlier.
    assert model.passes[0] == [f"answer{i}" for i in range(8)]
    assert model.passes[1] == [f"mirror{i}" for i in range(8)]


def test_background_work_is_not_starved_by_sustained_load() -> None:
    model = RecordingModel()

    async def scenario() -> float:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=1, background_max_delay_ms=100)
        batcher.start()
        stop = asyncio.Event()

        async def caller(number: int) -> None:  # always another answer waiting
            while not stop.is_set():
                await batcher.submit(model, [f"answer{number}"])

        callers = [asyncio.create_task(caller(number)) for number in range(6)]
        await asyncio.sleep(0.05)
        queued = time.monotonic()
        await asyncio.wait_for(batcher.submit(model, ["mirror"], background=True), timeout=5)
        waited = time.monotonic() - queued
        stop.set()
        await asyncio.gather(*callers)
        await batcher.stop()
        return waited

    waited = asyncio.run(scenario())
    mirror_pass = next(i for i, texts in enumerate(model.passes) if texts == ["mirror"])
    # Answers kept coming, so the mirror waited for its delay, then got a pass of its own.
    assert waited >= 0.1
    assert waited < 2
    assert mirror_pass > 3
    assert all(text.startswith("answer") for texts in model.passes[:mirror_pass] for text in texts)


@dataclass(frozen=True, eq=False)
class WatchedModel(ServedModel):
    """A real served model (tiny BERT through the model runner) that also records each pass it runs."""

    passes: list[list[str]] = field(default_factory=list)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.passes.append(list(texts))
        return super().predict(texts)


def test_a_text_the_tokenizer_fails_on_fails_only_its_own_request(tiny_checkpoint: Path) -> None:
    # A lone surrogate, which the edge now refuses, is what the real tokenizer fails on: if one reaches
    # a pass, the texts sharing it must still be answered.
    poison = "abc \ud800 def"
    model = WatchedModel("test", ClassifierRunner.from_directory(tiny_checkpoint, max_length=32))

    async def scenario() -> list[object]:
        batcher = MicroBatcher(max_batch_size=16, max_wait_ms=50)
        batcher.start()
        outcomes = await asyncio.gather(
            *(batcher.submit(model, [text]) for text in ["goal match", "vote party", poison, "chip code"]),
            return_exceptions=True,
        )
        await batcher.stop()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert model.passes[0] == ["goal match", "vote party", poison, "chip code"]  # they shared a pass
    answered = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert len(answered) == 3 and all(isinstance(result[0], Prediction) for result in answered)
    assert isinstance(outcomes[2], Exception)  # the poisoned request, and only it, gets the error


def test_passes_keep_within_the_token_budget_and_run_on_the_inference_thread() -> None:
    model = RecordingModel()
    long, short = "x" * 1000, "y"  # estimated at 128 (the model's maximum) and 2 word pieces

    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=32, max_wait_ms=50, max_batch_tokens=512)
        batcher.start()
        texts = [long] * 6 + [short] * 20
        results = await asyncio.gather(*(batcher.submit(model, [text]) for text in texts))
        assert [r[0].label for r in results] == texts
        await batcher.stop()

    asyncio.run(scenario())
    # 4 texts padded to 128 pieces make 512, the budget; once the long texts are gone, the short
    # ones share a single pass.
    assert [len(texts) for texts in model.passes] == [4, 4, 18]
    assert model.threads == {"inference_0"}  # never the event loop's thread


def test_work_handed_to_the_inference_thread_runs_there_until_the_batcher_stops() -> None:
    import pytest

    from serving.batching import InferenceStopped

    async def scenario() -> tuple[str, MicroBatcher]:
        batcher = MicroBatcher(max_batch_size=8, max_wait_ms=1)
        batcher.start()
        thread = await asyncio.to_thread(
            batcher.run_on_inference_thread, lambda: threading.current_thread().name
        )
        # Asked from the inference thread itself, it runs the work there and then instead of hanging.
        nested = await asyncio.to_thread(
            batcher.run_on_inference_thread,
            lambda: batcher.run_on_inference_thread(lambda: threading.current_thread().name),
        )
        await batcher.stop()
        return f"{thread} {nested}", batcher

    threads, stopped = asyncio.run(scenario())
    assert threads == "inference_0 inference_0"
    with pytest.raises(InferenceStopped):  # a version loading during shutdown is not refused for it
        stopped.run_on_inference_thread(len, "text")
