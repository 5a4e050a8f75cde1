"""File and text digests: the one hasher of the platform.

sha256 names batches and checks copies; md5 is what DVC records for a file, so
a batch already versioned with the same content can be recognised without DVC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_BLOCK = 1 << 20


def _file_digest(path: Path, digest: hashlib._Hash) -> str:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return _file_digest(path, hashlib.sha256())


def md5_file(path: Path) -> str:
    """The md5 DVC records for a file (its ``outs[0].md5``)."""
    return _file_digest(path, hashlib.md5(usedforsecurity=False))


def sha256_lines(lines: Iterable[str]) -> str:
    """A fingerprint of a set of strings, independent of their order."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
