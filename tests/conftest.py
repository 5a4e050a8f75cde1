"""Shared fixtures: synthetic labelled text, a tiny BERT built from a config, a test configuration.

Nothing here needs the network or ../shared: the model is random weights from a
BertConfig with a vocabulary made of the synthetic words, so training takes seconds.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bertloop.core import constants
from bertloop.core.config import PlatformConfig, load_config
from bertloop.core.env import apply_env_defaults

apply_env_defaults()

# Airflow reads its configuration when first imported: point it at a throw-away home,
# this repository's DAGs and SQLite before any test imports it.
REPO_ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bertloop-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.pop("BERTLOOP_CONFIG", None)

LABELS = ["sport", "tech", "politics"]
TOPIC_WORDS = {
    "sport": [
        "match",
        "goal",
        "team",
        "score",
        "league",
        "coach",
        "player",
        "stadium",
        "season",
        "cup",
        "referee",
        "striker",
    ],
    "tech": [
        "chip",
        "software",
        "code",
        "cloud",
        "server",
        "laptop",
        "network",
        "robot",
        "app",
        "data",
        "startup",
        "silicon",
    ],
    "politics": [
        "vote",
        "election",
        "minister",
        "party",
        "senate",
        "policy",
        "law",
        "campaign",
        "cabinet",
        "budget",
        "treaty",
        "mayor",
    ],
}
FILLER = ["the", "a", "of", "and", "in", "on", "today", "new", "after", "report", "says", "big", "week"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def synthetic_rows(rows_per_class: int, seed: int, exclude: set[str] = frozenset()) -> pd.DataFrame:
    """Distinct topic sentences; ``exclude`` keeps them apart from another set (the golden set)."""
    generator = random.Random(seed)
    seen = set(exclude)
    records = []
    for label in LABELS:
        made = 0
        while made < rows_per_class:
            words = generator.sample(TOPIC_WORDS[label], 5) + generator.sample(FILLER, 3)
            generator.shuffle(words)
            text = " ".join(words)
            if text in seen:
                continue
            seen.add(text)
            records.append({"text": text, "label": label})
            made += 1
    generator.shuffle(records)
    return pd.DataFrame.from_records(records)


def build_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocabulary = SPECIAL + sorted({w for words in TOPIC_WORDS.values() for w in words} | set(FILLER))
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(vocabulary)})
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def golden_frame() -> pd.DataFrame:
    return synthetic_rows(10, seed=1000)


def write_config(root: Path, checkpoint: Path, golden: pd.DataFrame, **extra: object) -> Path:
    """A YAML configuration for a workspace under ``root``; returns its path."""
    import yaml

    golden_path = root / "golden.csv"
    golden.to_csv(golden_path, index=False)
    settings: dict[str, object] = {
        "workspace": str(root / "workspace"),
        "data": {
            "labels": LABELS,
            "golden_set": str(golden_path),
            "landing_dir": str(root / "landing"),
            "landing_settle_seconds": 0,  # tests write a batch and take it at once
        },
        "validation": {"min_rows": 12, "min_examples_per_class": 3, "max_duplicate_share": 0.1},
        "training": {
            "base_checkpoint": str(checkpoint),
            "epochs": 1,
            "batch_size": 8,
            "max_length": 32,
            "logging_steps": 2,
        },
        # fp32 as evaluation scores: a random tiny model's near-tied logits would flip under bf16 or
        # int8 on a CPU that has them, and infra validation would (rightly) refuse it.
        "serving": {"precision": "fp32"},
        # The tiny model is random: these floors test the plumbing, not the model's quality.
        "gate": {
            "minimums": {"accuracy": 0.0, "macro_f1": 0.0},
            "max_regression": {"macro_f1": 1.0},
            "class_recall_floor": 0.0,
            # Per-class and per-slice comparisons are paired tests of two random models; a
            # class the second run happens to learn worse must not fail a plumbing test.
            "class_margin": 1.0,
            "slice_margin": 1.0,
        },
    }
    for dotted, value in extra.items():
        node = settings
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = value  # type: ignore[index]
    path = root / "bertloop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame) -> Path:
    return write_config(tmp_path, tiny_checkpoint, golden_frame)


@pytest.fixture
def platform_config(config_file: Path):
    return load_config(config_file, environ={})


@pytest.fixture
def good_batch(tmp_path: Path, golden_frame: pd.DataFrame) -> Path:
    path = tmp_path / "incoming" / "batch-01.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_rows(12, seed=1, exclude=set(golden_frame["text"])).to_csv(path, index=False)
    return path


@dataclass
class Registry:
    config_file: Path
    config: PlatformConfig

    def client(self):
        from registry.mlflow_registry import connect

        return connect(self.config)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.config.registry.model_name, alias, version)

    def delete_alias(self, alias: str) -> None:
        self.client().delete_registered_model_alias(self.config.registry.model_name, alias)

    def canary_percent(self) -> float:
        from registry.mlflow_registry import canary_percent

        return canary_percent(self.client(), self.config.registry.model_name)

    def set_canary_percent(self, percent: float) -> None:
        from registry.mlflow_registry import set_canary_percent

        set_canary_percent(self.client(), self.config.registry.model_name, percent)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Registry:
    """Version 1 (champion) and version 2 (challenger) of a tiny BERT, registered for real."""
    from bertloop.pipeline import steps

    root = tmp_path_factory.mktemp("registry")
    golden = synthetic_rows(10, seed=1000)
    config_file = write_config(
        root,
        tiny_checkpoint,
        golden,
        **{
            "serving.reload_interval_seconds": 0.3,
            "serving.max_batch_wait_ms": 2,
            "canary.poll_seconds": 0.2,
        },
    )
    config = load_config(config_file, environ={})
    for seed in (1, 2):
        batch = root / f"batch-{seed}.csv"
        synthetic_rows(12, seed=seed, exclude=set(golden["text"])).to_csv(batch, index=False)
        steps.run_all(config, f"run-{seed}", str(batch))
    registry = Registry(config_file, config)
    aliases = registry.client().get_registered_model(config.registry.model_name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {
        constants.CHAMPION_ALIAS: "1",
        constants.CHALLENGER_ALIAS: "2",
    }
    return registry
