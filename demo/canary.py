"""The demo's second half: the gateway under live traffic, and the canary taking both paths.

It starts ``bertloop serve``, drives traffic drawn from held-out articles with
feedback that arrives a little later, and runs the ``canary`` DAG through
Airflow twice: the challenger registered by the second retrain is promoted; then
a deliberately degraded model (the champion with its class outputs rotated, so
every answer is wrong) is made challenger and is rolled back.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from bertloop.core import constants
from bertloop.core.config import PlatformConfig
from devtools.process import start_gateway


class TrafficDriver:
    """Concurrent callers sending held-out articles; feedback follows after a delay."""

    def __init__(self, url: str, texts: pd.DataFrame, clients: int, feedback_delay: float, seed: int):
        self.url = url
        self.texts = texts.reset_index(drop=True)
        self.clients = clients
        self.feedback_delay = feedback_delay
        self.random = random.Random(seed)
        self.stop_event = threading.Event()
        self.pending: deque[tuple[float, str, str, str]] = deque()  # due, request id, label, token
        self.lock = threading.Lock()
        self.sent = self.failed = self.rejected = self.feedback_sent = 0
        self.answered: list[str] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        picks = [self.random.randrange(len(self.texts)) for _ in range(100_000)]
        callers = [f"caller-{self.random.randrange(500)}" for _ in range(100_000)]
        for number in range(self.clients):
            thread = threading.Thread(
                target=self._caller, args=(picks[number :: self.clients], callers[number :: self.clients])
            )
            self.threads.append(thread)
        self.threads.append(threading.Thread(target=self._feedback))
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()

    def _caller(self, picks: list[int], callers: list[str]) -> None:
        with httpx.Client(timeout=60) as client:
            for index, caller in zip(picks, callers, strict=False):
                if self.stop_event.is_set():
                    return
                row = self.texts.iloc[index]
                try:
                    response = client.post(
                        f"{self.url}/predict", json={"text": row["text"]}, headers={"X-Caller-Key": caller}
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    self.sent += 1
                    if 400 <= status < 500:
                        self.rejected += 1  # the caller's fault, answered with a clear 4xx
                        continue
                    if status != 200:
                        self.failed += 1
                        continue
                    answer = response.json()["predictions"][0]
                    request_id = answer["request_id"]
                    self.answered.append(request_id)
                    # A third of the callers later tell us the true label, as a labelling queue would.
                    if self.random.random() < 0.35:
                        self.pending.append(
                            (
                                time.monotonic() + self.feedback_delay,
                                request_id,
                                row["label"],
                                answer["feedback_token"],
                            )
                        )

    def _feedback(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop_event.is_set() or self.pending:
                with self.lock:
                    due = (
                        self.pending.popleft()
                        if self.pending and self.pending[0][0] <= time.monotonic()
                        else None
                    )
                if due is None:
                    if self.stop_event.is_set():
                        return
                    time.sleep(0.05)
                    continue
                # Only the caller a prediction was answered to may label it, with the token it was given.
                response = client.post(
                    f"{self.url}/feedback",
                    json={"request_id": due[1], "label": due[2], "feedback_token": due[3]},
                )
                if response.status_code == 201:
                    self.feedback_sent += 1


def register_degraded(config: PlatformConfig, examples: list[str]) -> str:
    """Register the champion with its class outputs rotated, and make it the challenger (for the demo)."""
    import torch

    from bertloop.core.stores.ledger import Ledger
    from registry import mlflow_registry as registry
    from rollout.aliases import AliasChanger

    client = registry.connect(config)
    name = config.registry.model_name
    champion = registry.version_for_alias(client, name, constants.CHAMPION_ALIAS)
    model, tokenizer = registry.load_version(name, str(champion))
    with torch.no_grad():  # label i now scores as label i+1: confident, fluent and always wrong
        model.classifier.weight.copy_(model.classifier.weight.roll(1, dims=0))
        model.classifier.bias.copy_(model.classifier.bias.roll(1, dims=0))
    folder = Path(tempfile.mkdtemp(prefix="degraded-"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    experiment = registry.ensure_experiment(client, config)
    tags = {constants.TAG_DECISION: "demo: deliberately degraded, never evaluated"}
    run_id = registry.find_or_create_run(client, experiment, f"demo-degraded-from-v{champion}", tags)
    uri = registry.log_transformers_model(run_id, str(folder), examples, config.training.max_length)
    version, _ = registry.register_version(client, name, run_id, uri, tags)
    AliasChanger(client, name, Ledger(config.ledger_url), actor="demo").set(
        constants.CHALLENGER_ALIAS,
        version,
        "register",
        {"summary": "degraded on purpose, to show a rollback"},
    )
    return version


def run(
    config: PlatformConfig,
    held_out: pd.DataFrame,
    env: dict[str, str],
    airflow: Callable[[list[str]], int],
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from bertloop.core.stores.ledger import Ledger
    from bertloop.core.stores.predictions import answered_request_ids

    gateway = start_gateway(workdir / "gateway.log", env=env)
    url = gateway.url
    say(f"gateway serving at {url} (log: {gateway.log_file})")
    health = httpx.get(f"{url}/healthz", timeout=30).json()
    plan = health["serving"]
    say(f"serving in {plan['device']}/{plan['precision']}; each version proved before traffic:")
    for version, verdict in sorted(health["infra_validation"].items()):
        say(f"  v{version}: {verdict}")
    # Callers send what the API accepts; longer articles would get a 422 (see the gateway tests).
    acceptable = held_out[held_out["text"].str.len() <= config.serving.max_text_chars]
    traffic = TrafficDriver(url, acceptable, clients=4, feedback_delay=2.0, seed=7)
    traffic.start()
    outcomes = {}
    try:
        time.sleep(3)
        say("airflow dags test canary  (the challenger from the second batch)")
        outcomes["good"] = airflow(["dags", "test", "canary"])
        say("registering a deliberately degraded model as challenger")
        degraded = register_degraded(config, held_out["text"].head(2).tolist())
        time.sleep(2)
        say(f"airflow dags test canary  (degraded v{degraded})")
        outcomes["degraded"] = airflow(["dags", "test", "canary"])
    finally:
        traffic.stop()
        gateway.stop()
    logged = answered_request_ids(config.prediction_log_url)
    entries = Ledger(config.ledger_url).entries(config.registry.model_name)
    return {
        "requests": traffic.sent,
        "failed": traffic.failed,
        "rejected": traffic.rejected,
        "feedback": traffic.feedback_sent,
        "answered_and_logged": sum(request_id in logged for request_id in traffic.answered),
        "answered": len(traffic.answered),
        "airflow_exit_codes": outcomes,
        "ledger": [
            {
                "action": e.action,
                "alias": e.alias,
                "from": e.from_version,
                "to": e.to_version,
                "actor": e.actor,
                "summary": e.evidence.get("summary", json.dumps(e.evidence)[:80]),
            }
            for e in entries
        ],
    }
