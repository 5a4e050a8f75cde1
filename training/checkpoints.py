"""Which checkpoint a retried training resumes from, and clearing away what a kill left half-written."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from training.callbacks import COMPLETE_MARKER

log = logging.getLogger(__name__)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(checkpoint_dir: Path, clean: bool = True) -> str | None:
    """The newest checkpoint marked complete; with ``clean``, incomplete newer ones are removed.

    Only one process should clean (rank 0 under torchrun); the others just skip them.
    """
    if not checkpoint_dir.is_dir():
        return None
    folders = sorted(
        (int(match.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    chosen: str | None = None
    for _, path in reversed(folders):
        if (path / COMPLETE_MARKER).is_file():
            chosen = str(path)
            break
        log.warning(
            "checkpoint %s is incomplete (the run was killed while writing it); not resuming from it", path
        )
        if clean:
            shutil.rmtree(path, ignore_errors=True)
    return chosen


def prune(checkpoint_dir: Path) -> int:
    """Remove a finished run's checkpoints (the model is in the registry); returns the bytes freed."""
    if not checkpoint_dir.is_dir():
        return 0
    freed = sum(path.stat().st_size for path in checkpoint_dir.rglob("*") if path.is_file())
    shutil.rmtree(checkpoint_dir)
    return freed
