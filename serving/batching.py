"""Micro-batching: concurrent requests share one forward pass.

Texts from all requests wait at most ``max_wait_ms`` for company, up to
``max_batch_size`` per pass and ``max_batch_tokens`` padded word pieces per pass
(texts times the longest one's estimated length), so a few long texts do not make
many short ones pay for their padding. Tokenisation and inference run in one
inference thread of the batcher's own, never on the event loop, which keeps
accepting requests meanwhile.

Background work (mirrored scoring for shadow and canary comparisons) runs in
passes of its own when no caller is waiting. Under sustained load callers are
always waiting, so background work that has waited ``background_max_delay_ms``
gets the next pass regardless: answers come first, but mirrored scoring never
starves (a canary judged on agreement needs it).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from serving.models import Prediction, ServedModel

# English word pieces average about four characters; the estimate only sizes passes, so being off
# by a little costs a little padding, never a wrong answer.
CHARS_PER_TOKEN = 4

T = TypeVar("T")


class InferenceStopped(BaseException):
    """The gateway is stopping and ran no more torch work: not a verdict on the version it was for.

    A BaseException, as asyncio's CancelledError is, so the handlers that turn any failure to load or
    answer into a refusal (``except Exception``) let it through instead of refusing a good version.
    """


def estimate_tokens(text: str, max_length: int) -> int:
    """Word pieces ``text`` will take in a pass (with [CLS] and [SEP]), without tokenising it."""
    return min(max_length, len(text) // CHARS_PER_TOKEN + 2)


def texts_per_pass(estimates: Sequence[int], max_count: int, max_tokens: int) -> int:
    """How many texts from the front of a queue one pass takes: at most ``max_count``, and no more than
    keep (count x longest estimate) within ``max_tokens``; always at least one."""
    longest = 0
    for taken, estimate in enumerate(estimates[:max_count]):
        longest = max(longest, estimate)
        if taken and (taken + 1) * longest > max_tokens:
            return taken
    return min(len(estimates), max_count)


@dataclass
class _Item:
    model: ServedModel
    text: str
    future: asyncio.Future[Prediction]
    queued_at: float
    tokens: int


class MicroBatcher:
    def __init__(
        self,
        max_batch_size: int,
        max_wait_ms: float,
        background_max_delay_ms: float = 1000.0,
        max_batch_tokens: int = 4096,
    ):
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.background_max_delay = background_max_delay_ms / 1000
        self._answers: deque[_Item] = deque()
        self._background: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # One inference thread: passes run one after another, each using every core torch is given.
        self._inference = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="inference", initializer=self._note_inference_thread
        )
        self._inference_thread: int | None = None

    def _note_inference_thread(self) -> None:
        self._inference_thread = threading.get_ident()

    def run_on_inference_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` on the inference thread, between passes, and return its result; for
        other threads (loading and proving a new version), which block until it is done.

        Every torch operation of the gateway runs on this one thread. Each thread that runs a
        parallel operation gets an OpenMP thread pool of its own that outlives the operation, and
        once the pools hold more threads than there are cores, libgomp stops letting idle threads
        spin between operations and parks them instead. Measured alone on a 2-core Xeon: a bf16
        MiniLM pass on one thread took 34.4 ms once another thread had cast the model's weights,
        against 24.6 ms when the same thread had, for as long as the process lived.

        Raises :class:`InferenceStopped` once :meth:`stop` has been called, so a version being loaded
        while the gateway shuts down is not refused for it.
        """
        if threading.get_ident() == self._inference_thread:  # already there: waiting on itself would hang
            return work(*args)
        if self._stopping:
            raise InferenceStopped("the gateway is stopping; no new work runs on its inference thread")
        try:
            future = self._inference.submit(work, *args)
        except RuntimeError as error:  # the executor was shut down meanwhile
            raise InferenceStopped("the gateway has stopped its inference thread") from error
        return future.result()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish everything submitted, then stop."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        # Waiting for the last pass (or a layer of a version being loaded) must not hold up the event loop.
        await asyncio.to_thread(self._inference.shutdown, True)

    @property
    def background_backlog(self) -> int:
        return len(self._background)

    async def submit(
        self, model: ServedModel, texts: Sequence[str], background: bool = False
    ) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        queue = self._background if background else self._answers
        limit = model.max_length
        items = [
            _Item(model, text, loop.create_future(), loop.time(), estimate_tokens(text, limit))
            for text in texts
        ]
        queue.extend(items)
        self._wakeup.set()
        return list(await asyncio.gather(*(item.future for item in items)))

    async def _wait_for_work(self, timeout: float | None = None) -> bool:
        """Sleep until something is submitted (or stop is asked); False when ``timeout`` passed first."""
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _next_queue(self, now: float) -> deque[_Item] | None:
        background_due = bool(self._background) and (
            now - self._background[0].queued_at >= self.background_max_delay
        )
        if background_due or (self._background and not self._answers):
            return self._background
        return self._answers if self._answers else None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            queue = self._next_queue(loop.time())
            if queue is None:
                if self._stopping:
                    return
                await self._wait_for_work()
                continue
            batch = [queue.popleft()]
            if queue is self._answers:  # callers wait up to max_wait for company
                deadline = loop.time() + self.max_wait
                while len(batch) < self.max_batch_size:
                    if queue:
                        if not self._fits(batch, queue[0]):
                            break
                        batch.append(queue.popleft())
                        continue
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self._stopping or not await self._wait_for_work(remaining):
                        break
            else:  # nobody waits on background work: take what is queued
                while queue and len(batch) < self.max_batch_size and self._fits(batch, queue[0]):
                    batch.append(queue.popleft())
            await self._infer(batch)

    def _fits(self, batch: list[_Item], item: _Item) -> bool:
        """Whether ``item`` joins the pass within the token budget (padded to its longest text)."""
        longest = max(item.tokens, *(member.tokens for member in batch))
        return (len(batch) + 1) * longest <= self.max_batch_tokens

    async def _infer(self, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            model = items[0].model
            futures = [item.future for item in items]
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._inference, model.predict, [item.text for item in items]
                )
            except Exception as error:
                if len(items) == 1:  # the one request waiting on this pass gets the error
                    if not futures[0].done():
                        futures[0].set_exception(error)
                    continue
                # One bad text must not fail the requests it shared a pass with: score each alone.
                for item in items:
                    await self._infer([item])
                continue
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)
