"""Quarantine: where a rejected batch goes, with a report a person can read.

The batch file is moved byte for byte (checked by hash) into its own folder,
beside the Great Expectations result (JSON), its Data Docs (HTML) and a short
report in plain words. Nothing in quarantine is ever trained on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bertloop.core import constants
from bertloop.core.hashing import sha256_file
from bertloop.core.workspace import write_json_atomic
from intake import report_html
from intake.rows import REASON, ROW, RowScreen

if TYPE_CHECKING:
    from intake.expectations import ValidationOutcome


class BatchRejected(RuntimeError):
    """The batch failed validation; it is in quarantine and must not be retried as is."""

    def __init__(self, batch_name: str, folder: Path, failures: list[str]):
        self.folder = folder
        self.failures = failures
        listing = "\n".join(f"  - {failure}" for failure in failures)
        super().__init__(
            f"batch {batch_name} was rejected and moved to {folder}:\n{listing}\n"
            f"Report: {folder / constants.QUARANTINE_REPORT_MD}. Fix the file and send it again."
        )


def quarantine_batch(
    batch_file: Path, folder: Path, failures: list[str], outcome: ValidationOutcome | None
) -> BatchRejected:
    """Move ``batch_file`` into ``folder`` with its reports; return the error to raise."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = sha256_file(batch_file)
    destination = folder / batch_file.name
    shutil.move(str(batch_file), destination)
    if sha256_file(destination) != digest:
        raise OSError(f"quarantined copy {destination} differs from the batch; investigate before retrying")
    if outcome is not None:
        write_json_atomic(folder / constants.QUARANTINE_GX_RESULT, outcome.result)
        if outcome.data_docs_index is not None and outcome.data_docs_index.parent.is_dir():
            docs = folder / constants.QUARANTINE_DATA_DOCS
            shutil.rmtree(docs, ignore_errors=True)
            shutil.move(str(outcome.data_docs_index.parent), docs)
    report = {
        "batch_file": destination.name,
        "sha256": digest,
        "failures": failures,
        "statistics": outcome.statistics if outcome is not None else None,
        "great_expectations_result": constants.QUARANTINE_GX_RESULT if outcome is not None else None,
        "data_docs": f"{constants.QUARANTINE_DATA_DOCS}/index.html" if outcome is not None else None,
    }
    write_json_atomic(folder / constants.QUARANTINE_REPORT_JSON, report)
    (folder / constants.QUARANTINE_REPORT_MD).write_text(_markdown(report), encoding="utf-8")
    page = report_html.render(report, outcome.result if outcome is not None else None)
    (folder / constants.QUARANTINE_REPORT_HTML).write_text(page, encoding="utf-8")
    return BatchRejected(destination.name, folder, failures)


def raise_if_quarantined(folder: Path) -> None:
    """A batch already in quarantine stays rejected: re-running it gives the same answer."""
    report_file = folder / constants.QUARANTINE_REPORT_JSON
    if report_file.is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        raise BatchRejected(report["batch_file"], folder, report["failures"])


def _markdown(report: dict) -> str:
    lines = [
        f"# Batch rejected: {report['batch_file']}",
        "",
        "This batch was not trained on. Fix the problems below and send the file again.",
        "",
        "## Problems",
        *[f"- {failure}" for failure in report["failures"]],
        "",
        f"sha256 of the original file: `{report['sha256']}` (kept unchanged in this folder)",
        "",
        "Every check of the suite, readable offline: "
        f"[{constants.QUARANTINE_REPORT_HTML}]({constants.QUARANTINE_REPORT_HTML})",
    ]
    if report["data_docs"]:
        lines += ["", f"Great Expectations Data Docs: [{report['data_docs']}]({report['data_docs']})"]
    return "\n".join(lines) + "\n"


def too_many_bad_rows(screen: RowScreen, limit: float) -> str:
    """The one problem of a batch with more bad rows than validation.max_bad_row_share allows."""
    total = len(screen.kept) + len(screen.dropped) + screen.repeats
    first = screen.dropped.iloc[0]
    return (
        f"{len(screen.dropped)} of {total} rows ({screen.bad_share:.1%}) fail row-level checks, more than "
        f"validation.max_bad_row_share={limit:.1%} allows ({screen.summary()}); e.g. row {first[ROW]}: "
        f"{first[REASON]}. Every such row and its reason: {constants.QUARANTINE_ROWS_CSV}"
    )


def write_row_report(screen: RowScreen, folder: Path, batch_name: str) -> None:
    """``rows.csv`` (each row split off, with its row number and reason) and ``rows.md`` (a summary)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{constants.QUARANTINE_ROWS_CSV}.tmp"
    screen.dropped.to_csv(partial, index=False)
    partial.replace(folder / constants.QUARANTINE_ROWS_CSV)
    lines = [
        f"# Rows split off {batch_name}",
        "",
        f"{len(screen.dropped)} rows dropped ({screen.bad_share:.1%} of the batch), "
        f"{screen.repeats} exact repeats collapsed into their first row; "
        f"{len(screen.kept)} rows went on.",
        "",
        *[f"- {reason}: {count}" for reason, count in screen.summary().items()],
        "",
        f"Each dropped row with its row number and reason: [{constants.QUARANTINE_ROWS_CSV}]"
        f"({constants.QUARANTINE_ROWS_CSV}). None of them was trained on.",
    ]
    (folder / constants.QUARANTINE_ROWS_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
