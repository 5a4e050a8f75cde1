#!/usr/bin/env python
"""A soak under the null: steady natural-mix traffic, one drift check per window, through the verdict policy.

The setting the issue measured: a champion trained on class-balanced batches (60
BBC articles per topic), live traffic with the corpus's natural topic mix, no
drift injected. Each window is judged three ways, in the same run:

- **before** (the previous rule): against the balanced training texts, drift
  confirmed when the embedding test fires or two signals fire, each at alpha;
- **training, reweighted**: the new fallback reference through the new policy;
- **baseline**: the champion's first answers after promotion (natural mix)
  through the new policy (Holm over the signals, confirmation only on harm or a
  severe shift).

Then the shift scenarios (70% one topic; the demo's banner on 30% and on every
article) go through the new policy against the baseline. The champion here is
all-MiniLM-L6-v2 (mean pooled, frozen) with a logistic-regression head fitted on
the balanced batch: the drift check reads only its answers, confidences and
embeddings, and this keeps the soak to minutes on 2 cores. Every live answer gets
its true label as feedback.

    .venv/bin/python bench/drift_soak.py [--windows 30 --window-size 200]

Ends with one JSON line holding every figure it printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


class Champion:
    """Frozen MiniLM embeddings with a logistic-regression head; features as the drift check reads them."""

    def __init__(self, train: pd.DataFrame):
        import torch
        from sklearn.linear_model import LogisticRegression
        from transformers import AutoModel, AutoTokenizer

        from training.finetune import resolve_base_checkpoint

        torch.set_num_threads(max(1, torch.get_num_threads()))
        folder = resolve_base_checkpoint("")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.cache: dict[str, np.ndarray] = {}
        self.head = LogisticRegression(max_iter=2000).fit(self.embed(train["text"].tolist()), train["label"])

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        todo = [text for text in dict.fromkeys(texts) if text not in self.cache]
        with torch.inference_mode():
            for start in range(0, len(todo), 32):
                chunk = todo[start : start + 32]
                encoded = self.tokenizer(
                    chunk, truncation=True, max_length=128, padding=True, return_tensors="pt"
                )
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).float()
                for text, row in zip(chunk, ((hidden * mask).sum(1) / mask.sum(1)).numpy(), strict=True):
                    self.cache[text] = row
        return np.vstack([self.cache[text] for text in texts])

    def features(self, texts: list[str]):
        from drift.features import Features

        embeddings = self.embed(texts)
        probabilities = self.head.predict_proba(embeddings)
        # As the check reads them (ClassifierRunner.token_ids): whole texts, no special tokens. Truncated
        # at 128, nearly every article had the same length and the length test could say nothing.
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return Features(
            lengths=np.array([len(ids) for ids in token_ids]),
            token_ids=[list(ids) for ids in token_ids],
            embeddings=embeddings,
            labels=[str(label) for label in self.head.classes_[probabilities.argmax(axis=1)]],
            confidences=probabilities.max(axis=1),
        )


def rows_of(features, truths: list[str]) -> list[dict[str, object]]:
    return [
        {"label": label, "confidence": float(confidence), "true_label": truth, "text": "x"}
        for label, confidence, truth in zip(features.labels, features.confidences, truths, strict=True)
    ]


def previous_rule(found) -> bool:
    """The rule before this change: the embedding test alone, or any two signals, each at alpha."""
    fired = [signal.name for signal in found if signal.drifted]
    return "embedding_mmd" in fired or len(fired) >= 2


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--window-size", type=int, default=200)
    parser.add_argument("--shift-windows", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from scipy.stats import kstest

    from bertloop.core.config import DriftConfig
    from demo.data import BBC_LABELS, load_bbc_news
    from demo.drift import BANNER
    from drift import policy, reference, signals
    from drift.check import _baseline_accuracy as baseline_accuracy

    started = time.perf_counter()
    settings = DriftConfig()
    generator = np.random.default_rng(args.seed)
    corpus = load_bbc_news().drop_duplicates("text").sample(frac=1.0, random_state=args.seed)
    corpus = corpus[corpus["text"].str.len() <= 9_000].reset_index(drop=True)
    train = pd.concat([corpus[corpus["label"] == label].head(60) for label in BBC_LABELS])
    rest = corpus.drop(train.index).reset_index(drop=True)
    golden, baseline_rows, pool = rest.iloc[:200], rest.iloc[200:600], rest.iloc[600:].reset_index(drop=True)
    champion = Champion(train)
    golden_features = champion.features(golden["text"].tolist())
    golden_accuracy = float(np.mean(np.array(golden_features.labels) == golden["label"].to_numpy()))
    training_ref = reference.build(
        "1", champion.features(train["text"].tolist()), settings.rare_token_count, golden_accuracy
    )
    base_features = champion.features(baseline_rows["text"].tolist())
    base_accuracy = float(np.mean(np.array(base_features.labels) == baseline_rows["label"].to_numpy()))
    # Live feedback is held to what the check holds it to (the lower of the baseline's and the golden
    # set's accuracy), and a baseline the check would refuse is refused here too.
    held_to, refused = baseline_accuracy(
        rows_of(base_features, baseline_rows["label"].tolist()), golden_accuracy, settings
    )
    if refused or held_to is None:
        raise SystemExit(f"the drift check would not take this baseline: {refused}")
    baseline = reference.baseline(training_ref, base_features, settings.rare_token_count, held_to, "baseline")
    mix = {label: round(share, 3) for label, share in pool["label"].value_counts(normalize=True).items()}
    print(f"champion: MiniLM + logistic head on {len(train)} balanced articles; golden accuracy "
          f"{golden_accuracy:.1%}, baseline live accuracy {base_accuracy:.1%} "
          f"on {len(baseline_rows)} answers; feedback held to {held_to:.1%}")  # fmt: skip
    print(f"live pool: {len(pool)} held-out articles, natural mix {mix}; {args.windows} steady windows of "
          f"{args.window_size}; alpha {settings.alpha}, severe {settings.severe_mmd:g}, "
          f"{settings.permutations} permutations")  # fmt: skip

    def judge(texts: list[str], truths: list[str], against: str) -> tuple[policy.Verdict, list, bool]:
        window = champion.features(texts)
        rows = rows_of(window, truths)
        if against == "baseline":
            ref, golden_confidences = baseline, None
        elif against == "reweighted":
            ref = reference.reweighted(training_ref, Counter(window.labels))
            golden_confidences = golden_features.confidences
        else:
            ref, golden_confidences = training_ref, golden_features.confidences
        found, _ = signals.detect(settings, ref, rows, window, golden_confidences)
        if against == "before":  # the old detect also ran the label and confidence tests on training data
            from drift.detectors import confidence_drift, label_drift

            found = [signal for signal in found if signal.name != "estimated_accuracy"] + [
                label_drift(
                    ref.label_counts, dict(Counter(window.labels)), settings.alpha, settings.psi_threshold
                ),
                confidence_drift(ref.confidences, window.confidences, settings.alpha),
            ]
        return policy.decide(found, settings.alpha, settings.severe_mmd), found, previous_rule(found)

    steady: dict[str, dict[str, int]] = {key: Counter() for key in ("before", "reweighted", "baseline")}
    p_values: dict[str, list[float]] = {}
    steady_scores: list[float] = []
    for number in range(args.windows):
        sample = pool.sample(args.window_size, random_state=int(generator.integers(1 << 31)))
        texts, truths = sample["text"].tolist(), sample["label"].tolist()
        for against in steady:
            verdict, found, old = judge(texts, truths, against)
            if against == "before":
                steady[against]["confirmed"] += old
            else:
                steady[against][verdict.level] += 1
            if against == "baseline":
                steady_scores.extend(s.statistic for s in found if s.name == "embedding_mmd")
                for signal in found:
                    p_values.setdefault(signal.name, []).append(float(signal.p_value or 1.0))
        print(f"  steady window {number + 1}/{args.windows}", end="\r", flush=True)
    print()
    figures: dict[str, object] = {
        "windows": args.windows, "window_size": args.window_size,
        "golden_accuracy": golden_accuracy, "baseline_accuracy": base_accuracy, "held_to": held_to,
    }  # fmt: skip
    print(f"{'steady traffic, judged against':<44}{'confirmed':>10}{'warnings':>10}")
    for against, label in (("before", "balanced training texts, previous rule"),
                           ("reweighted", "training texts reweighted, new policy"),
                           ("baseline", "live baseline, new policy")):  # fmt: skip
        counts = steady[against]
        warnings = "-" if against == "before" else str(counts["warning"])
        print(f"{label:<44}{counts['confirmed']:>10}{warnings:>10}")
        figures[f"steady_false_confirmations_{against}"] = counts["confirmed"]
        if against != "before":
            figures[f"steady_warnings_{against}"] = counts["warning"]
    figures["steady_mean_mmd2_baseline"] = float(np.mean(steady_scores))
    print(
        f"steady MMD² against the baseline: mean {np.mean(steady_scores):.4f}, "
        f"max {np.max(steady_scores):.4f}"
    )
    print("p-values under the null (baseline), Kolmogorov-Smirnov against uniform:")
    for name, values in sorted(p_values.items()):
        result = kstest(values, "uniform")
        print(f"  {name:<20} median {np.median(values):.3f}  KS p {result.pvalue:.3g}")
        figures[f"null_median_p_{name}"] = float(np.median(values))
        figures[f"null_ks_p_{name}"] = float(result.pvalue)

    scenarios = {"topic mix (70% tech)": "topic", "banner on 30%": 0.3, "banner on every article": 1.0}
    print(f"shift scenarios against the live baseline ({args.shift_windows} windows each):")
    print(
        f"{'scenario':<26}{'confirmed':>10}{'warnings':>10}{'detected':>10}{'MMD fired':>11}  live accuracy"
    )
    for name, kind in scenarios.items():
        counts: Counter[str] = Counter()
        accuracies: list[float] = []
        scores: list[float] = []
        for _ in range(args.shift_windows):
            sample = pool.sample(args.window_size, random_state=int(generator.integers(1 << 31)))
            if kind == "topic":
                tech = pool[pool["label"] == "tech"].sample(
                    int(0.7 * args.window_size), random_state=int(generator.integers(1 << 31))
                )
                sample = pd.concat([tech, sample.head(args.window_size - len(tech))])
            texts, truths = sample["text"].tolist(), sample["label"].tolist()
            if kind != "topic":
                texts = [
                    BANNER + text if i < float(kind) * len(texts) else text for i, text in enumerate(texts)
                ]
            verdict, found, _ = judge(texts, truths, "baseline")
            counts[verdict.level] += 1
            counts["mmd"] += "embedding_mmd" in verdict.fired
            scores.extend(signal.statistic for signal in found if signal.name == "embedding_mmd")
            window_accuracy = [s for s in found if s.name == "accuracy"]
            accuracies.append(held_to + window_accuracy[0].statistic if window_accuracy else float("nan"))
        detected = counts["confirmed"] + counts["warning"]
        print(f"{name:<26}{counts['confirmed']:>10}{counts['warning']:>10}{detected:>10}{counts['mmd']:>11}"
              f"{np.mean(scores):>11.4f}  {np.nanmean(accuracies):.1%}")  # fmt: skip
        figures[f"{name.split(' (')[0].replace(' ', '_')}_mean_mmd2"] = float(np.mean(scores))
        key = name.split(" (")[0].replace(" ", "_")
        figures[f"{key}_confirmed"] = counts["confirmed"]
        figures[f"{key}_warnings"] = counts["warning"]
        figures[f"{key}_mmd_fired"] = counts["mmd"]
        figures[f"{key}_live_accuracy"] = float(np.nanmean(accuracies))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{figures['seconds']} s in all")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
