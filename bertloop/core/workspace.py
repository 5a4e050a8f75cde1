"""The on-disk layout of a platform workspace, and the per-run step manifests.

Each step writes one small JSON manifest into its run's folder. The command line
chains steps through these manifests; the DAG passes the same dicts through
XCom. Writes are atomic, so a step killed half-way never leaves a manifest that
a retry would mistake for a finished step.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_RUN_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StepNotRun(RuntimeError):
    """A step asked for the output of an earlier step that has not run for this run key."""


def safe_run_key(run_key: str) -> str:
    """Airflow run ids hold ':' and '+', which do not belong in folder names."""
    cleaned = _RUN_KEY_UNSAFE.sub("_", run_key).strip("._")
    if not cleaned:
        raise ValueError(f"run key {run_key!r} has no usable characters")
    return cleaned


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def data_repo(self) -> Path:
        return self.root / "data-repo"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def lock(self, name: str, timeout: float = 600) -> Any:
        """A file lock on shared state of this workspace (``with workspace.lock("aliases"): ...``).

        Held across processes and, on a shared volume, across workers.
        """
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f".{name}.lock"), timeout=timeout)

    def run_dir(self, run_key: str) -> Path:
        return self.runs / safe_run_key(run_key)

    def manifest_path(self, run_key: str, step: str) -> Path:
        return self.run_dir(run_key) / f"{step}.json"

    def write_manifest(self, run_key: str, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        path = self.manifest_path(run_key, step)
        write_json_atomic(path, payload)
        return payload

    def read_manifest(self, run_key: str, step: str) -> dict[str, Any]:
        path = self.manifest_path(run_key, step)
        if not path.is_file():
            raise StepNotRun(
                f"step '{step}' has not completed for run key '{run_key}' "
                f"(no {path}); run `bertloop {step} --run-key {run_key}` first"
            )
        return json.loads(path.read_text(encoding="utf-8"))

    def find_manifest(self, run_key: str, step: str) -> dict[str, Any] | None:
        path = self.manifest_path(run_key, step)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False
    ) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        temporary = Path(handle.name)
    os.replace(temporary, path)
