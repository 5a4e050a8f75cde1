"""A git + DVC repository holding every accepted batch and the golden set.

Content hashes are DVC's own (md5 of the file, as in the ``.dvc`` file); each
change is a git commit, so any training set can be checked out again by its
revision. A file lock serialises writers: two runs adding batches at once take
turns instead of corrupting the git index.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock

from bertloop.core.faults import crash_point
from bertloop.core.hashing import md5_file

BATCHES = "batches"
GOLDEN = "golden"


@dataclass(frozen=True)
class VersionedFile:
    path: str  # inside the data repository
    md5: str  # DVC's content hash
    rev: str  # git commit that records it


class DataRepository:
    def __init__(self, root: Path):
        self.root = root

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root.parent / f".{self.root.name}.lock"), timeout=600):
            yield

    def ensure(self) -> None:
        """Create the repository on first use; a no-op afterwards."""
        if (self.root / ".dvc").is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").exists():
            self._git("init", "--quiet", "--initial-branch=main")
            self._git("config", "user.name", "bertloop")
            self._git("config", "user.email", "bertloop@localhost")
        from dvc.repo import Repo

        Repo.init(str(self.root)).close()
        self._git("add", ".dvc")
        self._git("commit", "--quiet", "-m", "Initialise the bertloop data repository")

    def add_batch(self, source: Path, batch_id: str) -> VersionedFile:
        return self._add(
            source, Path(BATCHES) / f"{batch_id}{source.suffix.lower()}", f"Accept batch {batch_id}"
        )

    def add_golden(self, source: Path) -> VersionedFile:
        return self._add(source, Path(GOLDEN) / source.name, f"Version golden set {source.name}")

    def batch_files(self) -> list[Path]:
        """Every accepted batch, in a stable order."""
        folder = self.root / BATCHES
        return (
            sorted(
                p for p in folder.iterdir() if p.is_file() and p.suffix != ".dvc" and p.name != ".gitignore"
            )
            if folder.is_dir()
            else []
        )

    def batch_files_at(self, rev: str) -> list[Path]:
        """The accepted batches as of commit ``rev``: a snapshot no later commit can change.

        Two runs versioning at once each get the batches committed up to their own, so
        what a run trains on does not depend on how the other run's steps interleave.
        """
        listed = self._git("ls-tree", "-r", "--name-only", rev, "--", BATCHES).splitlines()
        return sorted(self.root / name.removesuffix(".dvc") for name in listed if name.endswith(".dvc"))

    def _added_in(self, dvc_file: Path) -> str:
        """The commit that last changed ``dvc_file``: the one that accepted this content."""
        return self._git("log", "-n", "1", "--format=%H", "--", str(dvc_file.relative_to(self.root))).strip()

    def md5_of(self, relative: str) -> str:
        record = yaml.safe_load((self.root / f"{relative}.dvc").read_text(encoding="utf-8"))
        return str(record["outs"][0]["md5"])

    def _add(self, source: Path, relative: Path, message: str) -> VersionedFile:
        with self._locked():
            self.ensure()
            target = self.root / relative
            dvc_file = self.root / f"{relative}.dvc"
            records = [dvc_file, target.parent / ".gitignore"]
            if dvc_file.is_file() and self.md5_of(str(relative)) == md5_file(source):
                # Already added with identical content. A run killed between `dvc add` and
                # `git commit` left it uncommitted: finish that commit, so the revision recorded
                # as lineage really holds the data.
                self._commit(records, message)
                return VersionedFile(str(relative), self.md5_of(str(relative)), self._added_in(dvc_file))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            from dvc.repo import Repo

            with Repo(str(self.root)) as repo:
                (stage,) = repo.add([str(target)])
                md5 = str(stage.outs[0].hash_info.value)
            crash_point("version:before-commit")
            self._commit(records, message)
            return VersionedFile(str(relative), md5, self._added_in(dvc_file))

    def _commit(self, paths: list[Path], message: str) -> None:
        """Stage ``paths`` and commit them if anything is not committed yet."""
        present = [str(path.relative_to(self.root)) for path in paths if path.exists()]
        self._git("add", *present)
        if self._git("status", "--porcelain", "--", *present).strip():
            self._git("commit", "--quiet", "-m", message)

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        completed = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed in {self.root}: {completed.stderr.strip()}")
        return completed.stdout
