#!/usr/bin/env python
"""Fine-tuning speed and quality: the previous default recipe against the platform's recipe.

Same data, same run, same code path (``training.finetune.fine_tune``), all-MiniLM-L6-v2:

- (a) previous defaults: 2 epochs, batch 16, learning rate 5e-5 for every weight, fp32,
  random batches, the last epoch's weights;
- (b) the platform's recipe: ``training.*: auto`` (batch, learning rates, epochs from the
  data and device), the precision plan (bf16 autocast where the CPU has it), batches
  grouped by length, early stopping on the validation split's macro-F1;
- (c) with ``--fp32-recipe``: (b) again with ``training.precision: fp32``, so that (b)'s
  bf16 accuracy is set against fp32's on the same data, recipe and seed.

Both hold out the same stratified tenth for validation (the temperature, and (b)'s early
stopping) and are scored on banking77's test split. Texts are cut at 64 tokens.

    .venv/bin/python bench/finetune.py [PATH] [--fp32-recipe] [--max-train-rows 3000 --epochs 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "datasets" / "banking77"
MAX_LENGTH = 64


def load(folder: Path, max_train_rows: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    labels = json.loads((folder / "categories.json").read_text(encoding="utf-8"))
    if max_train_rows and max_train_rows < len(train):
        train = train.sample(n=max_train_rows, random_state=seed).reset_index(drop=True)
    return train, test, labels


def run(name: str, settings, train: pd.DataFrame, test: pd.DataFrame, labels: list[str], work: Path) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from modeling.runner import ClassifierRunner
    from training.finetune import fine_tune, resolve_base_checkpoint

    started = time.perf_counter()
    outcome = fine_tune(
        train["text"].tolist(),
        train["category"].tolist(),
        labels,
        resolve_base_checkpoint(""),
        work / name / "checkpoints",
        work / name / "model",
        settings,
    )
    wall = time.perf_counter() - started
    scored = ClassifierRunner.from_directory(outcome.model_dir, MAX_LENGTH).score(test["text"].tolist(), 256)
    truth = test["category"].tolist()
    epochs_run = outcome.epochs_run
    figures = {
        "wall_s": round(wall, 1),
        "samples_per_s": round(outcome.train_examples * epochs_run / wall, 1),
        "epochs_run": epochs_run,
        "global_step": outcome.global_step,
        "precision": outcome.precision,
        "batch_size": int(outcome.recipe["recipe.batch_size"]),
        "learning_rate": float(outcome.recipe["recipe.learning_rate"]),
        "stop": outcome.stop_note,
        "test_accuracy": round(float(accuracy_score(truth, scored.labels)), 4),
        "test_macro_f1": round(float(f1_score(truth, scored.labels, average="macro")), 4),
    }
    print(f"{name}: " + ", ".join(f"{key} {value}" for key, value in figures.items()), flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="banking77 folder")
    parser.add_argument("--max-train-rows", type=int, default=None, help="a seeded sample, for a shorter run")
    parser.add_argument("--epochs", type=float, default=None, help="cap (b)'s epochs (default: auto)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fp32-recipe", action="store_true", help="also run (b) in fp32: (c)")
    args = parser.parse_args()
    if not (args.data / "train.csv").is_file():
        print(f"no banking77 at {args.data}; pass its folder", file=sys.stderr)
        return 2

    from bertloop.core.config import TrainingConfig
    from bertloop.core.env import apply_env_defaults

    apply_env_defaults()
    train, test, labels = load(args.data, args.max_train_rows, args.seed)
    common = {"max_length": MAX_LENGTH, "seed": args.seed, "logging_steps": 50}
    previous = TrainingConfig(
        **common, epochs=2, batch_size=16, learning_rate=5e-5, precision="fp32", patience=0,
        head_learning_rate_multiplier=1, group_by_length=False, class_weight_imbalance=None,
    )  # fmt: skip
    platform = TrainingConfig(**common, **({"epochs": args.epochs} if args.epochs else {}))
    print(f"banking77: {len(train)} training rows (a tenth held out for validation), {len(test)} test rows, "
          f"{len(labels)} intents; max_length {MAX_LENGTH}; (b) epochs: {args.epochs or 'auto'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as folder:
        baseline = run("a_previous", previous, train, test, labels, Path(folder))
        recipe = run("b_recipe", platform, train, test, labels, Path(folder))
        fp32 = None
        if args.fp32_recipe:
            fp32 = run("c_recipe_fp32", platform.model_copy(update={"precision": "fp32"}),
                       train, test, labels, Path(folder))  # fmt: skip
    ratios = {
        "samples_per_s_ratio": round(recipe["samples_per_s"] / baseline["samples_per_s"], 2),
        "wall_ratio": round(recipe["wall_s"] / baseline["wall_s"], 2),
        "accuracy_points_gained": round(100 * (recipe["test_accuracy"] - baseline["test_accuracy"]), 1),
    }
    if fp32 is not None:
        gap = recipe["test_accuracy"] - fp32["test_accuracy"]
        ratios["recipe_vs_fp32_accuracy_points"] = round(100 * gap, 2)
        ratios["recipe_vs_fp32_speed_ratio"] = round(recipe["samples_per_s"] / fp32["samples_per_s"], 2)
    print(", ".join(f"{key} {value}" for key, value in ratios.items()))
    print(json.dumps({"train_rows": len(train), "epochs_cap": args.epochs, "previous": baseline,
                      "recipe": recipe, "recipe_fp32": fp32, **ratios}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
