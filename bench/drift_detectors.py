#!/usr/bin/env python
"""Detection power, false alarms and time per window: the platform's drift check against Evidently.

Same reference, same windows, same run. The reference is 200 BBC News articles;
each scenario draws windows of live texts from the rest of the corpus:

- no shift: a random sample (every alarm is a false alarm);
- topic mix: 70% of the window from one topic;
- banner 30% / 10%: that share of articles carries a publisher's football banner.

The platform's check runs as in production: the gateway embedded each text when
it answered (all-MiniLM-L6-v2, mean pooling, on the serving plan) and logged the
embedding as float16; the check reads the window's rows from the log, takes the
word-piece lengths and rare pieces from the tokenizer, runs the embedding MMD test
(permutation p-value), Holm-adjusts the input signals and gives a verdict
(``drift.policy.decide``; an alarm is a warning or a confirmation). Its time per
window is the check's, from logged rows: the encoder pass happened when the
gateway answered. Also timed: the same check on rows logged without embeddings
(the check runs the encoder itself), and the verdicts with fp32 embeddings, to
show that float16 storage keeps the detection power. Evidently runs its default
text drift check (``DataDriftPreset`` on a text column: a domain classifier).

    .venv/bin/python bench/drift_detectors.py [--windows 8 --window-size 100] [--scenarios "banner 30%"]

The script ends with one JSON line holding every figure it printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


SCENARIOS = ["no shift", "topic mix", "banner 30%", "banner 10%"]


def serving_runner(precision: str):
    """The encoder the gateway would serve and the drift check would embed with (random head: only the
    encoder's embeddings are read here)."""
    from modeling.hardware import inference_plan
    from modeling.runner import ClassifierRunner
    from training.finetune import resolve_base_checkpoint

    plan = inference_plan("cpu", requested_precision=precision)
    return ClassifierRunner.from_directory(resolve_base_checkpoint(""), 128, plan)


def logged_rows(runner, texts: list[str]) -> tuple[list[dict], np.ndarray]:
    """The prediction-log rows the gateway writes for ``texts``, and the unrounded (fp32) embeddings."""
    from bertloop.core.stores.predictions import encode_embedding

    scored = runner.score(texts, batch_size=32, embeddings=True)
    rows = [
        {"text": text, "label": label, "confidence": confidence, "embedding": encode_embedding(vector)}
        for text, label, confidence, vector in zip(texts, scored.labels, scored.confidences,
                                                   scored.embeddings, strict=True)
    ]  # fmt: skip
    return rows, scored.embeddings


def platform_check(runner, settings, reference, rows: list[dict], exact: np.ndarray | None = None):
    """One drift check's verdict on logged ``rows``; ``exact`` swaps in unrounded (fp32) embeddings."""
    from drift import features, policy, signals

    window = features.from_log(runner, rows)
    if exact is not None:
        window = replace(window, embeddings=exact)
    found, _ = signals.detect(settings, reference, rows, window, None)
    return policy.decide(found, settings.alpha, settings.severe_mmd)


def windows(corpus: pd.DataFrame, scenario: str, count: int, size: int, seed: int) -> list[list[str]]:
    from demo.drift import BANNER

    generator = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        sample = corpus.sample(size, random_state=int(generator.integers(1 << 31)))
        texts = sample["text"].tolist()
        if scenario == "topic mix":
            topic = corpus[corpus["label"] == "tech"].sample(
                int(0.7 * size), random_state=int(generator.integers(1 << 31))
            )
            texts = topic["text"].tolist() + texts[: size - len(topic)]
        elif scenario.startswith("banner"):
            share = int(scenario.split()[1].rstrip("%")) / 100
            texts = [BANNER + text if i < share * size else text for i, text in enumerate(texts)]
        result.append(texts)
    return result


def evidently_drift(reference: list[str], window: list[str]) -> bool:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(text_columns=["text"])
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(pd.DataFrame({"text": window}), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame({"text": reference}), data_definition=definition),
    )
    counts = snapshot.dict()["metrics"][0]["value"]
    return bool(counts["count"] >= 1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--window-size", type=int, default=100)
    parser.add_argument("--precision", default="fp32", help="serving precision of the encoder (fp32, int8)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated; each keeps its windows (and seed) of a full run")  # fmt: skip
    args = parser.parse_args()
    wanted = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if unknown := sorted(set(wanted) - set(SCENARIOS)):
        parser.error(f"unknown scenarios {unknown}; choose from {SCENARIOS}")

    from bertloop.core.config import DriftConfig
    from demo.data import load_bbc_news
    from drift import features, reference

    settings = DriftConfig()  # the product's defaults: alpha 0.01 (Holm), 1000 permutations
    corpus = load_bbc_news().drop_duplicates("text")
    reference_rows = corpus.sample(200, random_state=0)
    live = corpus.drop(reference_rows.index)
    reference_texts = reference_rows["text"].tolist()
    runner = serving_runner(args.precision)
    ref = reference.build(
        "bench", features.featurize(runner, reference_texts), settings.rare_token_count, None
    )
    evidently_drift(reference_texts, live["text"].head(50).tolist())  # warm-up: imports and first fit
    print(f"reference: 200 articles; {args.windows} windows of {args.window_size} texts per scenario; "
          f"check: the product's defaults (alpha {settings.alpha} with Holm, {settings.permutations} "
          f"permutations), encoder {runner.plan.describe()}")  # fmt: skip
    header = ("scenario", "check alarms", "fp32-emb alarms", "Evidently alarms", "check s/window",
              "re-embed s/window", "Evidently s/window")  # fmt: skip
    print("".join(f"{h:>19}" if i else f"{h:<12}" for i, h in enumerate(header)))
    totals: dict[str, list[float]] = {"check": [], "recompute": [], "evidently": []}
    figures: dict[str, object] = {"windows": args.windows, "window_size": args.window_size,
                                  "alpha": settings.alpha, "permutations": settings.permutations,
                                  "encoder_plan": runner.plan.describe(),
                                  "embedding_bytes_per_row": 0}  # fmt: skip
    for number, scenario in enumerate(SCENARIOS):
        if scenario not in wanted:
            continue
        hits = {"check": 0, "fp32": 0, "evidently": 0}
        times = {"check": 0.0, "recompute": 0.0, "evidently": 0.0}
        for window in windows(live, scenario, args.windows, args.window_size, seed=number):
            rows, exact = logged_rows(runner, window)  # what the gateway logged when it answered
            figures["embedding_bytes_per_row"] = len(rows[0]["embedding"])
            started = time.perf_counter()
            verdict = platform_check(runner, settings, ref, rows)
            times["check"] += time.perf_counter() - started
            old_rows = [{**row, "embedding": None} for row in rows]  # logged before embeddings were kept
            started = time.perf_counter()
            recomputed = platform_check(runner, settings, ref, old_rows)
            times["recompute"] += time.perf_counter() - started
            exact_verdict = platform_check(runner, settings, ref, rows, exact=exact)
            started = time.perf_counter()
            hits["evidently"] += evidently_drift(reference_texts, window)
            times["evidently"] += time.perf_counter() - started
            assert recomputed.level == verdict.level, (recomputed, verdict)
            hits["check"] += verdict.level != "none"
            hits["fp32"] += exact_verdict.level != "none"
        key = scenario.replace(" ", "_").replace("%", "pct")
        per_window = {name: spent / args.windows for name, spent in times.items()}
        figures.update({f"{key}_check_alarms": hits["check"], f"{key}_fp32_embedding_alarms": hits["fp32"],
                        f"{key}_evidently_alarms": hits["evidently"],
                        f"{key}_check_s_per_window": per_window["check"],
                        f"{key}_recompute_s_per_window": per_window["recompute"],
                        f"{key}_evidently_s_per_window": per_window["evidently"]})  # fmt: skip
        for name in totals:
            totals[name].append(per_window[name])
        counts = [f"{hits[name]}/{args.windows}" for name in ("check", "fp32", "evidently")]
        print(
            f"{scenario:<12}"
            + "".join(f"{count:>19}" for count in counts)
            + "".join(f"{per_window[name]:>19.3f}" for name in ("check", "recompute", "evidently"))
        )
    ratio = float(np.mean(totals["evidently"]) / np.mean(totals["check"]))
    recompute_ratio = float(np.mean(totals["evidently"]) / np.mean(totals["recompute"]))
    print(f"time per window, Evidently / the check from logged embeddings: x{ratio:.1f}; "
          f"Evidently / the check re-embedding old rows: x{recompute_ratio:.1f}; "
          f"{figures['embedding_bytes_per_row']} bytes of embedding per logged row; "
          "'no shift' alarms are false alarms")  # fmt: skip
    figures["evidently_over_check_time_ratio"] = ratio
    figures["evidently_over_recompute_check_time_ratio"] = recompute_ratio
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
