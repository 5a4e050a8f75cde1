"""Micro-batching: concurrent requests share one forward pass.

Texts from all requests wait at most ``max_wait_ms`` for company, up to
``max_batch_size`` per pass; inference runs in a worker thread so the event
loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from serving.models import Prediction, ServedModel


@dataclass
class _Item:
    model: ServedModel
    text: str
    future: asyncio.Future[Prediction]


class MicroBatcher:
    def __init__(self, max_batch_size: int, max_wait_ms: float):
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # passes run, for tests and metrics

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish everything already submitted, then stop."""
        await self._queue.put(None)
        if self._task is not None:
            await self._task

    async def submit(self, model: ServedModel, texts: Sequence[str]) -> list[Prediction]:
        loop = asyncio.get_running_loop()
        items = [_Item(model, text, loop.create_future()) for text in texts]
        for item in items:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(item.future for item in items)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
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
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._infer(batch)

    async def _infer(self, batch: list[_Item]) -> None:
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.model), []).append(item)
        for items in groups.values():
            self.batches += 1
            try:
                results = await asyncio.to_thread(items[0].model.predict, [item.text for item in items])
            except Exception as error:  # the requests waiting on this pass get the error
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            for item, result in zip(items, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
