"""The data repository: a retried version step completes what a kill left half-done."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from versioning.dvc_store import DataRepository


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    path = tmp_path / "incoming" / "b.csv"
    path.parent.mkdir()
    path.write_text("text,label\nthe match,sport\n")
    return path


@pytest.mark.parametrize("killed", ["after git add", "after dvc add"])
def test_a_retry_commits_what_a_kill_left_uncommitted(tmp_path: Path, batch: Path, killed: str) -> None:
    repository = DataRepository(tmp_path / "data-repo")
    first = repository.add_batch(batch, "b-1")
    # Undo the commit as a kill before `git commit` would have left it: staged, or not even staged.
    _git(repository.root, "reset", "--soft" if killed == "after git add" else "--mixed", "HEAD~1")
    assert "batches/b-1.csv.dvc" not in _git(repository.root, "ls-tree", "-r", "--name-only", "HEAD")

    again = repository.add_batch(batch, "b-1")
    assert again.md5 == first.md5
    # The revision recorded as lineage holds the batch's .dvc file, and nothing is left uncommitted.
    assert "batches/b-1.csv.dvc" in _git(repository.root, "ls-tree", "-r", "--name-only", again.rev)
    assert _git(repository.root, "status", "--porcelain").strip() == ""
    assert _git(repository.root, "log", "-1", "--format=%s") == "Accept batch b-1\n"


def test_adding_the_same_batch_twice_makes_one_commit(tmp_path: Path, batch: Path) -> None:
    repository = DataRepository(tmp_path / "data-repo")
    first = repository.add_batch(batch, "b-1")
    assert repository.add_batch(batch, "b-1").rev == first.rev
