"""The landing folder: where batches arrive, and how a run takes exactly one of them.

A batch is taken by an atomic rename into ``<landing>/.claimed/<run>/``, so two
runs started together never take the same file and never see it vanish under
them; a retried run finds the file it had already claimed. Only plain, settled
files are taken: symbolic links (which could point anywhere, a secrets file
included), hidden files, partial uploads (``.part``, ``.tmp``, ...) and files
modified within ``data.landing_settle_seconds`` (still being written) are left
where they are, and the "nothing waiting" message says which were skipped and why.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CLAIMED = ".claimed"
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", ".swp")


class NoBatchWaiting(LookupError):
    """No data path was given and the landing folder holds no batch that may be taken."""


def waiting(
    landing_dir: Path, settle_seconds: float, now: float | None = None
) -> tuple[list[Path], list[str]]:
    """The files that may be taken, oldest first, and a note for each file skipped."""
    now = time.time() if now is None else now
    taken: list[tuple[float, str, Path]] = []
    skipped: list[str] = []
    if not landing_dir.is_dir():
        return [], skipped
    with os.scandir(landing_dir) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and the claimed folder
            if entry.is_symlink():
                skipped.append(f"{entry.name} (a symbolic link; copy the file itself into the folder)")
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.lower().endswith(PARTIAL_SUFFIXES):
                skipped.append(f"{entry.name} (a partial upload; rename it when the upload is complete)")
                continue
            try:
                modified = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # claimed by another run since the folder was listed
            if (age := now - modified) < settle_seconds:
                skipped.append(
                    f"{entry.name} (modified {max(age, 0):.0f} s ago; taken once unchanged for "
                    f"data.landing_settle_seconds={settle_seconds:g})"
                )
            else:
                taken.append((modified, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(taken)], skipped


def claim_oldest(landing_dir: Path, claim_key: str, settle_seconds: float) -> Path:
    """Move the oldest waiting batch into this run's claim folder and return its new path."""
    folder = _claim_folder(landing_dir, claim_key)
    if (already := _claimed(folder)) is not None:
        return already  # a retried run: the batch it claimed before it died
    candidates, skipped = waiting(landing_dir, settle_seconds)
    for path in candidates:
        claimed = _move(path, folder)
        if claimed is not None:
            return claimed
    detail = f"; skipped: {', '.join(skipped)}" if skipped else ""
    raise NoBatchWaiting(f"no data_path given and no batch waiting in {landing_dir}{detail}")


def claim_file(landing_dir: Path, claim_key: str, path: Path) -> Path:
    """Claim one named file of the landing folder (a batch a drift event carries)."""
    folder = _claim_folder(landing_dir, claim_key)
    if (already := _claimed(folder)) is not None and already.name == path.name:
        return already
    if path.is_symlink():
        raise NoBatchWaiting(f"{path} is a symbolic link; copy the file itself into the landing folder")
    if not path.exists():
        raise FileNotFoundError(f"batch file {path} does not exist; check data_path")
    claimed = _move(path, folder)
    if claimed is None:
        raise NoBatchWaiting(f"{path} was taken by another run; nothing to ingest")
    return claimed


def release(claimed: Path) -> None:
    """The batch is safely in the workspace: remove the claimed file and its folder."""
    claimed.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: leave it
        claimed.parent.rmdir()


def is_in_landing(path: Path, landing_dir: Path) -> bool:
    """Whether ``path`` names a file directly in the landing folder (the file itself not followed)."""
    return path.parent.resolve() == landing_dir.resolve()


def _claim_folder(landing_dir: Path, claim_key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in claim_key).strip(".") or "run"
    return landing_dir.resolve() / CLAIMED / safe[:120]


def _claimed(folder: Path) -> Path | None:
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return files[0] if files else None


def _move(path: Path, folder: Path) -> Path | None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    try:
        os.rename(path, target)  # atomic within one file system: exactly one run wins
    except FileNotFoundError:
        return None  # another run took it first
    return target
