"""The Great Expectations suite that every labelled batch must pass.

Two checks need a whole-batch view that no built-in expectation has (examples
per class, overlap with the golden set), so the frame is given derived columns
first and ordinary column expectations run on those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bertloop.core.config import PlatformConfig
from intake.leakage import GoldenIndex, normalize_text

SUITE_NAME = "labelled_batch"
NORMALIZED_TEXT = "_bertloop_normalized_text"
LABEL_COUNT = "_bertloop_label_count"
NEAR_GOLDEN = "_bertloop_nearest_golden_similarity"


@dataclass
class ValidationOutcome:
    success: bool
    failures: list[str]
    statistics: dict[str, Any]
    result: dict[str, Any] = field(repr=False)
    data_docs_index: Path | None = None


def prepare_frame(
    frame: pd.DataFrame, config: PlatformConfig, golden_index: GoldenIndex | None = None
) -> pd.DataFrame:
    """Add the derived columns the suite checks; leave the original columns untouched."""
    text, label = config.data.text_column, config.data.label_column
    prepared = frame.copy()
    if text in prepared.columns:
        prepared[NORMALIZED_TEXT] = prepared[text].map(
            lambda value: None if value is None else normalize_text(value)
        )
        if golden_index is not None:
            prepared[NEAR_GOLDEN] = golden_index.nearest(prepared[text].tolist())
    if label in prepared.columns:
        counts = prepared[label].map(prepared[label].value_counts())
        prepared[LABEL_COUNT] = counts.where(prepared[label].notna(), None)
    return prepared


def build_expectations(config: PlatformConfig, golden_texts: set[str]) -> list[Any]:
    import great_expectations.expectations as gxe

    text, label = config.data.text_column, config.data.label_column
    bounds = config.validation
    return [
        gxe.ExpectColumnToExist(column=text),
        gxe.ExpectColumnToExist(column=label),
        gxe.ExpectTableRowCountToBeBetween(min_value=bounds.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column=text),
        # Zero-width spaces and joiners, word joiner and BOM are invisible but not \s.
        gxe.ExpectColumnValuesToNotMatchRegex(column=text, regex=r"^[\s\u200b-\u200d\u2060\ufeff]*$"),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column=text, min_value=bounds.min_text_chars, max_value=bounds.max_text_chars
        ),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        gxe.ExpectColumnValuesToBeInSet(column=label, value_set=list(config.data.labels)),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column=label, min_value=bounds.min_classes),
        gxe.ExpectColumnValuesToBeBetween(column=LABEL_COUNT, min_value=bounds.min_examples_per_class),
        gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column=NORMALIZED_TEXT, min_value=1.0 - bounds.max_duplicate_share
        ),
        gxe.ExpectColumnValuesToNotBeInSet(column=NORMALIZED_TEXT, value_set=sorted(golden_texts)),
    ] + (
        [
            gxe.ExpectColumnValuesToBeBetween(
                column=NEAR_GOLDEN, max_value=bounds.near_duplicate_threshold, strict_max=True
            )
        ]
        if bounds.near_duplicate_threshold is not None
        else []
    )


def validate_frame(
    frame: pd.DataFrame,
    config: PlatformConfig,
    golden_texts: set[str],
    data_docs_dir: Path | None = None,
    golden_raw_texts: Sequence[str] = (),
) -> ValidationOutcome:
    """Run the suite on ``frame``; with ``data_docs_dir``, also render Data Docs there."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions: list[gx.checkpoint.actions.ValidationAction] = []
    if data_docs_dir is not None:
        context.add_data_docs_site(
            "quarantine",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["quarantine"]))
    asset = context.data_sources.add_pandas("incoming").add_dataframe_asset("labelled_batch")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for expectation in build_expectations(config, golden_texts):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=SUITE_NAME,
            validation_definitions=[definition],
            actions=actions,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    near = config.validation.near_duplicate_threshold is not None
    prepared = prepare_frame(frame, config, GoldenIndex(golden_raw_texts) if near else None)
    run = checkpoint.run(batch_parameters={"dataframe": prepared})
    (suite_result,) = run.run_results.values()
    described = [
        describe_failure(outcome.to_json_dict(), prepared, config)
        for outcome in suite_result.results
        if not outcome.success
    ]
    failures = [failure for failure in described if failure is not None]
    docs_index = data_docs_dir / "index.html" if data_docs_dir is not None else None
    return ValidationOutcome(
        success=bool(suite_result.success),
        failures=failures,
        statistics=batch_statistics(frame, config),
        result=suite_result.to_json_dict(),
        data_docs_index=docs_index,
    )


def batch_statistics(frame: pd.DataFrame, config: PlatformConfig) -> dict[str, Any]:
    label = config.data.label_column
    counts = frame[label].value_counts().to_dict() if label in frame.columns else {}
    return {"rows": len(frame), "columns": list(frame.columns), "label_counts": counts}


def describe_failure(outcome: dict[str, Any], frame: pd.DataFrame, config: PlatformConfig) -> str | None:
    """One plain sentence for a failed expectation: what is wrong and what to fix.

    None for a failure another problem already explains (a check on a missing column,
    "duplicates" in a batch with no rows), so the real cause is not buried.
    """
    expectation = outcome["expectation_config"]
    kind, kwargs = expectation["type"], expectation["kwargs"]
    result = outcome.get("result") or {}
    column = kwargs.get("column")
    if column is not None and column not in frame.columns and kind != "expect_column_to_exist":
        # A missing source column leaves this check unevaluated; the missing-column
        # expectation already says what to fix.
        return None
    examples = result.get("partial_unexpected_list") or []
    count = result.get("unexpected_count")
    rows = config.validation
    text, label = config.data.text_column, config.data.label_column
    if kind == "expect_column_to_exist":
        return (
            f"required column '{column}' is missing (found: {list(frame.columns)}); rename the "
            f"column or set data.text_column / data.label_column"
        )
    if kind == "expect_table_row_count_to_be_between":
        return f"the batch has {result.get('observed_value')} rows; at least {rows.min_rows} are required"
    if kind == "expect_column_values_to_not_be_null":
        return f"{count} rows have no value in '{column}'; fill or drop them"
    if kind == "expect_column_values_to_not_match_regex":
        return f"{count} rows have blank text in '{text}' (only whitespace); fill or drop them"
    if kind == "expect_column_value_lengths_to_be_between":
        return (
            f"{count} texts are outside the allowed length of {rows.min_text_chars}-"
            f"{rows.max_text_chars} characters; shorten or drop them"
        )
    if kind == "expect_column_values_to_be_in_set":
        unknown = sorted({str(value) for value in examples})
        return (
            f"{count} rows have labels outside the known label set, e.g. {unknown}; "
            f"allowed labels are {list(config.data.labels)}"
        )
    if kind == "expect_column_unique_value_count_to_be_between":
        return (
            f"the batch has {result.get('observed_value')} distinct label(s) in '{label}'; "
            f"at least {rows.min_classes} are required to train a classifier"
        )
    if kind == "expect_column_values_to_be_between" and column == LABEL_COUNT:
        counts = frame[label].value_counts()
        short = {str(name): int(n) for name, n in counts.items() if n < rows.min_examples_per_class}
        return (
            f"classes with fewer than {rows.min_examples_per_class} examples: {short}; "
            "add examples or lower validation.min_examples_per_class"
        )
    if kind == "expect_column_proportion_of_unique_values_to_be_between":
        if frame.empty:
            return None  # no rows: the row-count check says so; "100% duplicates" would mislead
        unique_share = float(result.get("observed_value") or 0.0)
        return (
            f"{1 - unique_share:.1%} of texts are duplicates (ignoring case and spacing); "
            f"at most {rows.max_duplicate_share:.1%} is allowed; de-duplicate the batch"
        )
    if kind == "expect_column_values_to_not_be_in_set":
        leaked = frame[frame[NORMALIZED_TEXT].isin(examples)]
        return (
            f"{count} texts also appear in the golden set (leakage, ignoring case, punctuation, spacing "
            f"and full-width forms), e.g. {_rows(leaked, text)}; "
            "remove them: the golden set is never trained on"
        )
    if kind == "expect_column_values_to_be_between" and column == NEAR_GOLDEN:
        threshold = rows.near_duplicate_threshold
        near = frame[frame[NEAR_GOLDEN] >= (threshold if threshold is not None else 1.0)]
        return (
            f"{count} texts nearly duplicate a golden-set text (word-trigram Jaccard at least {threshold}), "
            f"e.g. {_rows(near, text)}; remove them or raise validation.near_duplicate_threshold"
        )
    return f"{kind} failed on column '{column}': {result}"


def _rows(frame: pd.DataFrame, text: str, limit: int = 3) -> str:
    """A few of the batch's own rows (never the golden set's), by row number."""
    shown = [f"row {index}: {str(value)[:60]!r}" for index, value in frame[text].head(limit).items()]
    return "; ".join(shown) if shown else "(rows not shown)"
