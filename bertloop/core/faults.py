"""Named crash points, so the kill tests can kill a real run exactly where a crash hurts most.

``BERTLOOP_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it
reaches that point: no exception handler, ``finally`` block or atexit hook runs,
as with ``kill -9`` or a lost machine. Unset (always, outside the tests), a crash
point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "BERTLOOP_CRASH_AT"

# Where the kill tests strike: after each step's manifest, and inside the steps' critical sections.
POINTS = (
    "ingest:claimed",  # the batch is renamed into this run's claim folder, not yet copied
    "ingest:done",
    "validate:done",
    "version:before-commit",  # `dvc add` done, `git commit` not yet
    "version:done",
    "train:checkpoint-written",  # Trainer wrote a checkpoint; it is not marked complete yet
    "train:done",
    "evaluate:done",
    "register:before-alias",  # the version is registered, its alias not yet set
)


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
