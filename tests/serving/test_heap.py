"""The gateway takes what it has loaded out of the garbage collector's full passes."""

from __future__ import annotations

import gc
import weakref

from serving.app import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freezing_the_heap_hides_what_is_loaded_and_still_collects_what_requests_leave() -> None:
    loaded = [_Node() for _ in range(1000)]  # stands for the models and libraries loaded at startup
    gc.unfreeze()
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(loaded)  # a full collection no longer walks them
        first, second = _Node(), _Node()  # a request's garbage: a reference cycle made after the freeze
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        gc.collect()
        assert gone() is None
        # A model unloaded after it was frozen (its objects in cycles) is collected by the next freeze.
        unloaded = loaded[0]
        unloaded.other = unloaded
        dropped = weakref.ref(unloaded)
        del loaded, unloaded
        freeze_heap()
        assert dropped() is None
    finally:
        gc.unfreeze()
