"""Micro-batching: concurrent requests share one forward pass.

Texts from all requests wait at most ``max_wait_ms`` for company, up to
``max_batch_size`` per pass; inference runs in a worker thread so the event
loop keeps accepting requests meanwhile. Background work (mirrored scoring for
shadow and canary comparisons) only runs when no caller is waiting, so it never
adds to the latency of an answer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from serving.models import Prediction, ServedModel

ANSWER, BACKGROUND, STOP = 0, 1, 2  # queue priorities: lower runs first


@dataclass(order=True)
class _Item:
    priority: int
    sequence: int
    model: ServedModel | None = field(compare=False)
    text: str = field(compare=False, default="")
    future: asyncio.Future[Prediction] | None = field(compare=False, default=None)


class MicroBatcher:
    def __init__(self, max_batch_size: int, max_wait_ms: float):
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._sequence = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # passes run, for tests and metrics

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        await self._queue.put(_Item(STOP, next(self._sequence), None))
        if self._task is not None:
            await self._task

    async def submit(
        self, model: ServedModel, texts: Sequence[str], background: bool = False
    ) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        priority = BACKGROUND if background else ANSWER
        items = [_Item(priority, next(self._sequence), model, text, loop.create_future()) for text in texts]
        for item in items:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(item.future for item in items if item.future is not None)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first.priority == STOP:
                break
            batch = [first]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                if item.priority == STOP:
                    stopping = True
                    break
                if item.priority != first.priority:
                    self._queue.put_nowait(item)  # answers and background work never share a pass
                    break
                batch.append(item)
            await self._infer(batch)

    async def _infer(self, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            self.batches += 1
            model = items[0].model
            assert model is not None
            futures = [item.future for item in items if item.future is not None]
            try:
                results = await asyncio.to_thread(model.predict, [item.text for item in items])
            except Exception as error:  # the requests waiting on this pass get the error
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)
