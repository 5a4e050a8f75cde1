"""The quarantine report as one self-contained HTML page: it renders the same without internet.

Great Expectations' Data Docs load jQuery, Bootstrap and Font Awesome from CDNs and stay unstyled
(their results table empty) offline; this page carries its own style and shows every check of the
suite with its outcome. Values are cut short and escaped: a leakage check lists the batch's
offending rows, never the golden set it was checked against.
"""

from __future__ import annotations

import html
from typing import Any

MAX_EXAMPLES = 5
MAX_CHARS = 120

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.5em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px 10px;text-align:left;vertical-align:top}
tr.fail td{background:#fde2e2}tr.pass td{background:#e6f4ea}code{background:#f3f3f3;padding:1px 4px}
.problems li{margin:.3em 0}"""


def render(report: dict[str, Any], gx_result: dict[str, Any] | None) -> str:
    """The page for one quarantined batch: its problems in plain words, then every check of the suite."""
    problems = "".join(f"<li>{_text(problem, 2000)}</li>" for problem in report["failures"])
    statistics = report.get("statistics") or {}
    rows = "".join(_check_row(check) for check in (gx_result or {}).get("results", []))
    checks = (
        f"<h2>Every check of the suite</h2><table><tr><th>check</th><th>column</th><th>outcome</th>"
        f"<th>observed</th><th>examples of what failed</th></tr>{rows}</table>"
        if rows
        else "<p>The file could not be read, so no check ran.</p>"
    )
    labels = ", ".join(f"{_text(k, 60)}: {v}" for k, v in (statistics.get("label_counts") or {}).items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Batch rejected: {_text(report["batch_file"], 200)}</title><style>{_STYLE}</style></head><body>
<h1>Batch rejected: {_text(report["batch_file"], 200)}</h1>
<p>This batch was not trained on. Fix the problems below and send the file again. The original is kept
unchanged in this folder (sha256 <code>{html.escape(report["sha256"])}</code>).</p>
<h2>Problems</h2><ul class="problems">{problems}</ul>
<p>Rows: {statistics.get("rows", "unknown")}. Labels: {labels or "unknown"}.</p>
{checks}</body></html>"""


def _check_row(check: dict[str, Any]) -> str:
    config = check.get("expectation_config") or {}
    result = check.get("result") or {}
    column = (config.get("kwargs") or {}).get("column") or ""
    passed = bool(check.get("success"))
    observed = result.get("observed_value")
    if observed is None and result.get("unexpected_count") is not None:
        observed = f"{result['unexpected_count']} unexpected ({result.get('unexpected_percent') or 0:.1f}%)"
    examples = [] if passed else (result.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]
    listed = "".join(f"<li><code>{_text(example, MAX_CHARS)}</code></li>" for example in examples)
    return (
        f'<tr class="{"pass" if passed else "fail"}"><td>{_text(config.get("type", "?"), 100)}</td>'
        f"<td>{_text(column, 100)}</td><td>{'passed' if passed else 'FAILED'}</td>"
        f"<td>{_text('' if observed is None else observed, MAX_CHARS)}</td><td><ul>{listed}</ul></td></tr>"
    )


def _text(value: object, limit: int) -> str:
    text = str(value)
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")
