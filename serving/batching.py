"""Micro-batching: concurrent requests share one forward pass.

Texts from all requests wait at most ``max_wait_ms`` for company, up to
``max_batch_size`` per pass; inference runs in a worker thread so the event
loop keeps accepting requests meanwhile.

Background work (mirrored scoring for shadow and canary comparisons) runs in
passes of its own when no caller is waiting. Under sustained load callers are
always waiting, so background work that has waited ``background_max_delay_ms``
gets the next pass regardless: answers come first, but mirrored scoring never
starves (a canary judged on agreement needs it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from serving.models import Prediction, ServedModel


@dataclass
class _Item:
    model: ServedModel
    text: str
    future: asyncio.Future[Prediction]
    queued_at: float


class MicroBatcher:
    def __init__(self, max_batch_size: int, max_wait_ms: float, background_max_delay_ms: float = 1000.0):
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.background_max_delay = background_max_delay_ms / 1000
        self._answers: deque[_Item] = deque()
        self._background: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish everything submitted, then stop."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    @property
    def background_backlog(self) -> int:
        return len(self._background)

    async def submit(
        self, model: ServedModel, texts: Sequence[str], background: bool = False
    ) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        queue = self._background if background else self._answers
        items = [_Item(model, text, loop.create_future(), loop.time()) for text in texts]
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
                        batch.append(queue.popleft())
                        continue
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self._stopping or not await self._wait_for_work(remaining):
                        break
            else:  # nobody waits on background work: take what is queued
                while queue and len(batch) < self.max_batch_size:
                    batch.append(queue.popleft())
            await self._infer(batch)

    async def _infer(self, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            model = items[0].model
            futures = [item.future for item in items]
            try:
                results = await asyncio.to_thread(model.predict, [item.text for item in items])
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
