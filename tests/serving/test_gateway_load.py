"""Concurrent clients while aliases flip, and a SIGTERM in the middle of traffic."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Registry, prediction_rows, start_gateway

pytestmark = pytest.mark.processes


def _client_loop(url: str, caller: str, stop: threading.Event, results: list, failures: list) -> None:
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            try:
                response = client.post(
                    f"{url}/predict",
                    json={"texts": ["goal team", "vote law"]},
                    headers={"X-Caller-Key": caller},
                )
            except httpx.HTTPError as error:
                failures.append(repr(error))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text}")
            else:
                results.extend(response.json()["predictions"])


def test_no_failed_request_across_promotions_and_rollbacks(two_versions: Registry, tmp_path: Path) -> None:
    gateway = start_gateway(two_versions.config_file, tmp_path)
    stop, results, failures = threading.Event(), [], []
    clients = [
        threading.Thread(target=_client_loop, args=(gateway.url, f"caller-{i}", stop, results, failures))
        for i in range(8)
    ]
    for client in clients:
        client.start()
    try:
        # Promote 2, roll back to 1, twice over, with canary shares in between.
        for champion, challenger, percent in [("2", "1", 25), ("1", "2", 50), ("2", "1", 0), ("1", "2", 100)]:
            time.sleep(1.5)
            two_versions.set_alias("champion", champion)
            two_versions.set_alias("challenger", challenger)
            two_versions.set_canary_percent(percent)
        time.sleep(1.5)
    finally:
        stop.set()
        for client in clients:
            client.join()
        two_versions.set_alias("champion", "1")
        two_versions.set_alias("challenger", "2")
        two_versions.set_canary_percent(0)
        gateway.stop()
    assert "Application shutdown complete" in gateway.output()
    assert failures == []
    assert len(results) > 100
    assert {p["model_version"] for p in results} == {"1", "2"}
    logged = prediction_rows(two_versions.config)
    counts = Counter(logged["request_id"])
    answered = [p["request_id"] for p in results]
    assert all(counts[request_id] == 1 for request_id in answered), "exactly one row per prediction"
    by_id = logged.set_index("request_id")
    assert all(by_id.loc[p["request_id"], "model_version"] == p["model_version"] for p in results[:200])


def _in_flight(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    line = next(line for line in metrics.splitlines() if line.startswith("bertloop_requests_in_flight "))
    return float(line.split()[1])


def test_sigterm_finishes_requests_in_flight_and_writes_their_rows(
    two_versions: Registry, tmp_path: Path
) -> None:
    # A long batching window and room for every text keep the requests in flight when the signal lands.
    settings = {"serving.max_batch_wait_ms": 2000, "serving.max_batch_size": 64}
    gateway = start_gateway(two_versions.config_file, tmp_path, **settings)
    responses: list[httpx.Response] = []
    refused: list[str] = []

    def send(index: int) -> None:
        try:
            responses.append(
                httpx.post(f"{gateway.url}/predict", json={"texts": [f"goal {index}", "vote"]}, timeout=60)
            )
        except httpx.ConnectError as error:  # arrived after the listener closed: never accepted
            refused.append(repr(error))

    senders = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for sender in senders:
        sender.start()
    # Signal only once the gateway holds requests: thread start-up on a loaded machine is slow.
    deadline = time.monotonic() + 30
    while _in_flight(gateway.url) < 12:
        assert time.monotonic() < deadline, "the requests never reached the gateway"
        time.sleep(0.02)
    gateway.process.send_signal(signal.SIGTERM)
    for sender in senders:
        sender.join()
    # Uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it ended.
    assert gateway.process.wait(timeout=60) in {0, -signal.SIGTERM}
    assert "Application shutdown complete" in gateway.output()
    assert len(responses) >= 12, f"too few requests were in flight: {len(responses)} ({refused})"
    assert all(response.status_code == 200 for response in responses)
    answered = [p["request_id"] for r in responses for p in r.json()["predictions"]]
    logged = Counter(prediction_rows(two_versions.config)["request_id"])
    assert all(logged[request_id] == 1 for request_id in answered), "a prediction lost its log row"
    assert "Waiting for application shutdown" in gateway.output()
