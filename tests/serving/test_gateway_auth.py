"""Who may call the gateway, over real HTTP: API keys with scopes, feedback only from the caller a
prediction was answered to, per-key limits, and what the prediction log keeps at rest."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.serving.conftest import GatewayProcess, Registry, start_gateway

pytestmark = pytest.mark.processes

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
PREDICT_ONLY = "predict-only-key-0123456789"
METRICS_ONLY = "metrics-key-0123456789abcdef"
CAROL = "carol-key-0123456789abcdef"
DAVE = "dave-key-0123456789abcdef"
ERIN = "erin-key-0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(two_versions: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose keys come from a file (one by digest only) and from BERTLOOP_API_KEYS."""
    folder = tmp_path_factory.mktemp("keyed")
    keys_file = folder / "api-keys"
    digest = hashlib.sha256(METRICS_ONLY.encode()).hexdigest()
    keys_file.write_text(
        f"# key scopes name\n{ALICE} predict,feedback alice\nsha256:{digest} metrics prometheus\n"
    )
    gateway = start_gateway(
        two_versions.config_file,
        folder,
        env={"BERTLOOP_API_KEYS": f"{BOB} predict,feedback bob;{PREDICT_ONLY} predict"},
        **{"serving.api_keys_file": str(keys_file)},
    )
    yield gateway
    gateway.stop()


def test_keys_are_required_once_configured_and_scopes_are_enforced(keyed: GatewayProcess) -> None:
    url = keyed.url
    assert httpx.post(f"{url}/predict", json={"text": "goal"}).status_code == 401
    wrong = httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer("not-a-key-at-all-000"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer(ALICE)).status_code == 200
    assert httpx.post(f"{url}/predict", json={"text": "goal"}, headers={"X-API-Key": BOB}).status_code == 200
    assert httpx.get(f"{url}/metrics", headers=bearer(ALICE)).status_code == 403
    assert httpx.get(f"{url}/metrics").status_code == 401
    metrics = httpx.get(f"{url}/metrics", headers={"X-API-Key": METRICS_ONLY})
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{url}/healthz").status_code == 200  # probes need no key
    answer = httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer(PREDICT_ONLY)).json()
    token = answer["predictions"][0]["feedback_token"]
    body = {"request_id": answer["predictions"][0]["request_id"], "label": "sport", "feedback_token": token}
    assert httpx.post(f"{url}/feedback", json=body, headers=bearer(PREDICT_ONLY)).status_code == 403


def test_openapi_declares_both_ways_of_sending_a_key(keyed: GatewayProcess) -> None:
    schemes = httpx.get(f"{keyed.url}/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"


def test_only_the_caller_answered_may_label_and_the_log_says_who(
    keyed: GatewayProcess, two_versions: Registry
) -> None:
    url = keyed.url
    mine = httpx.post(f"{url}/predict", json={"text": "vote"}, headers=bearer(ALICE)).json()["predictions"][0]
    theirs = httpx.post(f"{url}/predict", json={"text": "cup"}, headers=bearer(BOB)).json()["predictions"][0]

    def feedback(key: str, request_id: str, token: str | None) -> httpx.Response:
        body = {"request_id": request_id, "label": "politics"}
        if token is not None:
            body["feedback_token"] = token
        return httpx.post(f"{url}/feedback", json=body, headers=bearer(key))

    assert feedback(ALICE, mine["request_id"], None).status_code == 422
    assert feedback(BOB, mine["request_id"], mine["feedback_token"]).status_code == 403  # stolen token
    assert feedback(ALICE, theirs["request_id"], mine["feedback_token"]).status_code == 403  # wrong request
    forged = mine["feedback_token"][:-4] + "0000"
    assert feedback(ALICE, mine["request_id"], forged).status_code == 403
    assert feedback(ALICE, mine["request_id"], mine["feedback_token"]).status_code == 201
    assert feedback(BOB, theirs["request_id"], theirs["feedback_token"]).status_code == 201
    engine = sa.create_engine(two_versions.config.prediction_log_url)
    try:
        rows = pd.read_sql("SELECT request_id, given_by FROM feedback", engine).set_index("request_id")
        callers = pd.read_sql("SELECT caller_hash FROM predictions", engine)
    finally:
        engine.dispose()
    assert rows.loc[mine["request_id"], "given_by"] == "alice"
    assert rows.loc[theirs["request_id"], "given_by"] == "bob"
    # The caller hash is keyed by the gateway secret: no one can test guessed caller keys against it.
    assert mine["request_id"] not in set(callers["caller_hash"])
    assert hashlib.sha256(mine["request_id"].encode()).hexdigest()[:16] not in set(callers["caller_hash"])


def test_data_at_rest_is_readable_by_its_owner_only(keyed: GatewayProcess, two_versions: Registry) -> None:
    workspace = two_versions.config.workspace
    for path in (workspace / "predictions.db", workspace / "gateway-secret"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize(
    "options",
    [["--set", "serving.auth=required", "serve"], ["serve", "--host", "0.0.0.0"]],  # auto, public bind
    ids=["required", "auto-on-public-bind"],
)
def test_a_gateway_that_needs_keys_and_has_none_refuses_to_start(
    two_versions: Registry, options: list[str]
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "BERTLOOP_API_KEYS"}
    command = [sys.executable, "-m", "bertloop.pipeline.cli", "--config", str(two_versions.config_file)]
    done = subprocess.run(
        [*command, *options, "--port", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "requires API keys" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def limited(
    two_versions: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with a small rate, one request in flight per key, a one-second feedback window and a
    one-day retention, on its own prediction log seeded with rows older than that."""
    folder = tmp_path_factory.mktemp("limited")
    log_url = f"sqlite:///{folder / 'predictions.db'}"
    from bertloop.core.stores.predictions import PredictionLog, PredictionRow

    old = PredictionLog(log_url)
    old.record([PredictionRow("old-1", time.time() - 3 * 86400, "h", "1", "champion", "ok", 1.0, text="old")])
    old.flush()
    old.add_feedback("old-1", "sport", given_by="someone", now=time.time() - 3 * 86400)
    old.close()
    gateway = start_gateway(
        two_versions.config_file,
        folder,
        env={
            "BERTLOOP_API_KEYS": ";".join(
                f"{key} predict,feedback {name}"
                for key, name in (
                    (ALICE, "alice"),
                    (BOB, "bob"),
                    (CAROL, "carol"),
                    (DAVE, "dave"),
                    (ERIN, "erin"),
                )
            )
        },
        **{
            "serving.prediction_log_url": log_url,
            "serving.rate_limit_per_second": "0.2",  # slow enough that a loaded machine still sees it
            "serving.rate_limit_burst": "3",
            "serving.max_concurrent_per_key": "1",
            "serving.feedback_window_seconds": "1",
            "serving.retention_days": "1",
        },
    )
    yield gateway, log_url
    gateway.stop()


def test_retention_deletes_old_rows_at_start(limited: tuple[GatewayProcess, str]) -> None:
    engine = sa.create_engine(limited[1])
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 0
            assert connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one() == 0
    finally:
        engine.dispose()


def test_each_key_has_its_own_rate(limited: tuple[GatewayProcess, str]) -> None:
    url = limited[0].url
    statuses = [httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer(CAROL)) for _ in range(6)]
    refused = [response for response in statuses if response.status_code == 429]
    assert refused and all(int(response.headers["Retry-After"]) >= 1 for response in refused)
    assert "rate limit" in refused[0].json()["detail"]
    # Carol spending her allowance costs Bob nothing.
    assert httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer(BOB)).status_code == 200


def test_feedback_spends_the_same_per_key_rate(limited: tuple[GatewayProcess, str]) -> None:
    url = limited[0].url
    answer = httpx.post(f"{url}/predict", json={"text": "goal"}, headers=bearer(ERIN)).json()["predictions"][
        0
    ]
    body = {"request_id": answer["request_id"], "label": "sport", "feedback_token": "v1.1.guessed"}
    guesses = [httpx.post(f"{url}/feedback", json=body, headers=bearer(ERIN)) for _ in range(5)]
    statuses = [response.status_code for response in guesses]
    assert set(statuses) == {403, 429}, statuses  # guessing tokens runs into the rate limit
    assert all(int(r.headers["Retry-After"]) >= 1 for r in guesses if r.status_code == 429)


def test_a_key_with_a_request_in_flight_gets_a_429_for_the_next(limited: tuple[GatewayProcess, str]) -> None:
    url = limited[0].url
    responses: list[httpx.Response] = []
    texts = [f"word {i} " * 40 for i in range(64)]

    def call() -> None:  # Dave's three requests fit his burst: only the in-flight cap can refuse one
        responses.append(
            httpx.post(f"{url}/predict", json={"texts": texts}, headers=bearer(DAVE), timeout=60)
        )

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [response.status_code for response in responses]
    assert 200 in statuses and 429 in statuses, statuses
    assert set(statuses) <= {200, 429}
    assert all("in flight" in r.json()["detail"] for r in responses if r.status_code == 429)


def test_an_expired_feedback_token_is_refused(limited: tuple[GatewayProcess, str]) -> None:
    url = limited[0].url
    answer = httpx.post(f"{url}/predict", json={"text": "vote"}, headers=bearer(ALICE)).json()
    prediction = answer["predictions"][0]
    time.sleep(2.5)
    body = {
        "request_id": prediction["request_id"],
        "label": "sport",
        "feedback_token": prediction["feedback_token"],
    }
    refused = httpx.post(f"{url}/feedback", json=body, headers=bearer(ALICE))
    assert refused.status_code == 403 and "expired" in refused.json()["detail"]


MALLORY = "mallory-key-0123456789abcdef"
WEATHER = ["weather", "rain", "storm", "forecast", "sunny", "cloudy", "flood", "drought", "wind", "snow"]


def test_wrong_labels_posted_through_the_gateway_are_quarantined_not_retrained_on(
    two_versions: Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The attack end to end over HTTP: one key predicts 400 texts and labels every one of its own answers
    (with its tokens) wrongly; the drift check that would retrain on that feedback quarantines it."""
    import random

    from bertloop.pipeline.steps import training_texts
    from drift.check import run_check

    folder = tmp_path_factory.mktemp("poisoned")
    log_url = f"sqlite:///{folder / 'predictions.db'}"
    two_versions.set_canary_percent(0)  # every answer is the champion's
    gateway = start_gateway(
        two_versions.config_file,
        folder,
        env={"BERTLOOP_API_KEYS": f"{MALLORY} predict,feedback mallory"},
        **{"serving.prediction_log_url": log_url},
    )
    generator = random.Random(9)
    texts = [" ".join(generator.sample(WEATHER, 6)) + f" poisoned {i}" for i in range(400)]
    try:
        answers = []
        for start in range(0, len(texts), 64):
            response = httpx.post(
                f"{gateway.url}/predict", json={"texts": texts[start : start + 64]},
                headers=bearer(MALLORY), timeout=120,
            )  # fmt: skip
            assert response.status_code == 200, response.text
            answers += response.json()["predictions"]
        with httpx.Client(base_url=gateway.url, headers=bearer(MALLORY), timeout=60) as client:
            for answer in answers:
                body = {"request_id": answer["request_id"], "label": "sport",
                        "feedback_token": answer["feedback_token"]}  # fmt: skip
                assert client.post("/feedback", json=body).status_code == 201
    finally:
        gateway.stop()
    base = two_versions.config
    config = base.model_copy(
        update={
            "serving": base.serving.model_copy(update={"prediction_log_url": log_url}),
            # A ledger of its own: storm control has seen no trigger, so only the screen can stop this.
            "canary": base.canary.model_copy(update={"ledger_url": f"sqlite:///{folder / 'ledger.db'}"}),
            "drift": base.drift.model_copy(
                update={"min_window_size": 60, "reference_size": 120, "embedding_sample": 120,
                        "permutations": 100, "min_feedback": 20, "window_minutes": 5}
            ),
        }
    )  # fmt: skip
    outcome = run_check(config, lambda version: training_texts(config, version))
    assert outcome.confirmed and not outcome.triggered and outcome.data_path is None, outcome
    assert "quarantine" in outcome.reason and "'mallory' gave 400" in outcome.reason
    quarantined = config.workspace / "quarantine" / f"drift-feedback-{outcome.snapshot[:12]}"
    evidence = json.loads((quarantined / "poisoning_evidence.json").read_text())
    assert evidence["rows_per_key"] == {"mallory": 400}
    landing = config.data.landing_dir
    assert not landing.exists() or not any(landing.glob("drift-feedback-*"))  # nothing to retrain on
