#!/usr/bin/env python
"""Detection power, false alarms and detection time: the embedding (MMD) detector against Evidently.

Same reference, same windows, same run. The reference is 200 BBC News articles;
each scenario draws windows of live texts from the rest of the corpus:

- no shift: a random sample (every alarm is a false alarm);
- topic mix: 70% of the window from one topic;
- banner 30% / 10%: that share of articles carries a publisher's football banner.

Our detector embeds texts with all-MiniLM-L6-v2 (mean pooling) and runs the
permutation-calibrated MMD test; Evidently runs its default text drift check
(``DataDriftPreset`` on a text column: a domain classifier). Detection time is
per window, embedding included.

    .venv/bin/python bench/drift_detectors.py [--windows 8 --window-size 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def embedder():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from training.finetune import resolve_base_checkpoint

    folder = resolve_base_checkpoint("")
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()

    def embed(texts: list[str]) -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                encoded = tokenizer(texts[start : start + 32], truncation=True, max_length=128, padding=True,
                                    return_tensors="pt")  # fmt: skip
                hidden = model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).float()
                chunks.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.vstack(chunks)

    return embed


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
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--permutations", type=int, default=200)
    args = parser.parse_args()

    from demo.data import load_bbc_news
    from drift.detectors import mmd_permutation_test

    corpus = load_bbc_news().drop_duplicates("text")
    reference_rows = corpus.sample(200, random_state=0)
    live = corpus.drop(reference_rows.index)
    reference = reference_rows["text"].tolist()
    embed = embedder()
    reference_embeddings = embed(reference)
    evidently_drift(reference, live["text"].head(50).tolist())  # warm-up: imports and first fit
    scenarios = ["no shift", "topic mix", "banner 30%", "banner 10%"]
    print(f"reference: 200 articles; {args.windows} windows of {args.window_size} texts per scenario; "
          f"MMD alpha {args.alpha}, {args.permutations} permutations")  # fmt: skip
    header = ("scenario", "MMD alarms", "Evidently alarms", "MMD s/window", "Evidently s/window")
    print(f"{header[0]:<12}{header[1]:>12}{header[2]:>18}{header[3]:>14}{header[4]:>20}")
    totals = {"mmd": [], "evidently": []}
    figures: dict[str, object] = {"windows": args.windows, "window_size": args.window_size,
                                  "alpha": args.alpha, "permutations": args.permutations}  # fmt: skip
    for number, scenario in enumerate(scenarios):
        mmd_hits = evidently_hits = 0
        mmd_time = evidently_time = 0.0
        for index, window in enumerate(windows(live, scenario, args.windows, args.window_size, seed=number)):
            started = time.perf_counter()
            signal = mmd_permutation_test(
                reference_embeddings, embed(window), args.alpha, args.permutations, index
            )
            mmd_time += time.perf_counter() - started
            started = time.perf_counter()
            evidently_hit = evidently_drift(reference, window)
            evidently_time += time.perf_counter() - started
            mmd_hits += signal.drifted
            evidently_hits += evidently_hit
        key = scenario.replace(" ", "_").replace("%", "pct")
        figures.update({f"{key}_mmd_alarms": mmd_hits, f"{key}_evidently_alarms": evidently_hits,
                        f"{key}_mmd_s_per_window": mmd_time / args.windows,
                        f"{key}_evidently_s_per_window": evidently_time / args.windows})  # fmt: skip
        totals["mmd"].append(mmd_time / args.windows)
        totals["evidently"].append(evidently_time / args.windows)
        print(f"{scenario:<12}{mmd_hits:>8}/{args.windows:<3}{evidently_hits:>14}/{args.windows:<3}"
              f"{mmd_time / args.windows:>14.2f}{evidently_time / args.windows:>20.2f}")  # fmt: skip
    ratio = np.mean(totals["evidently"]) / np.mean(totals["mmd"])
    print(f"detection time ratio (Evidently / MMD): x{ratio:.2f}; 'no shift' alarms are false alarms")
    figures["evidently_over_mmd_time_ratio"] = float(ratio)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
