"""The gateway over real HTTP with real (tiny) models from the MLflow registry."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import LABELS
from tests.serving.conftest import GatewayProcess, Registry, prediction_rows

pytestmark = pytest.mark.processes


def test_predict_one_and_many(gateway: GatewayProcess, two_versions: Registry) -> None:
    one = httpx.post(f"{gateway.url}/predict", json={"text": "goal match team"}).json()["predictions"]
    assert len(one) == 1 and one[0]["label"] in LABELS and one[0]["model_version"] == "1"
    assert sum(one[0]["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    many = httpx.post(f"{gateway.url}/predict", json={"texts": ["vote", "chip code", "cup"]}).json()
    ids = [p["request_id"] for p in many["predictions"]]
    assert len(set(ids)) == 3 and all(p["role"] == "champion" for p in many["predictions"])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"text": 42}, 422, "text: Input should be a valid string"),
        ({"texts": ["ok", 7]}, 422, "texts.1: Input should be a valid string"),
        ({"texts": []}, 422, "'texts' is empty"),
        ({"text": "   "}, 422, "text 0 is empty or blank"),
        ({"texts": ["a"] * 65}, 422, "65 texts in one request; at most 64"),
        ({"text": "x" * 10_001}, 422, "at most 10000 are allowed"),
        ({"text": "a", "texts": ["b"]}, 422, "exactly one of 'text'"),
        ({}, 422, "exactly one of 'text'"),
        ({"text": "a", "model": "v2"}, 422, "model: Extra inputs are not permitted"),
    ],
)
def test_bad_input_gets_a_clear_4xx(gateway: GatewayProcess, body: dict, status: int, words: str) -> None:
    response = httpx.post(f"{gateway.url}/predict", json=body)
    assert response.status_code == status
    assert words in str(response.json()["detail"])


def test_not_json_is_a_4xx(gateway: GatewayProcess) -> None:
    response = httpx.post(
        f"{gateway.url}/predict", content=b"\xff\xfe not json", headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_feedback_joins_by_request_id(gateway: GatewayProcess) -> None:
    answer = httpx.post(f"{gateway.url}/predict", json={"text": "vote party"}).json()["predictions"][0]
    request_id, token = answer["request_id"], answer["feedback_token"]

    def feedback(request_id: str, label: str) -> httpx.Response:
        body = {"request_id": request_id, "label": label, "feedback_token": token}
        return httpx.post(f"{gateway.url}/feedback", json=body)

    assert feedback(request_id, "politics").status_code == 201
    assert feedback(request_id, "sport").status_code == 409
    # The token is bound to its request id: it proves nothing about another one.
    assert feedback("nope", "sport").status_code == 403
    assert feedback(request_id, "weather").status_code == 422


def test_health_and_metrics(gateway: GatewayProcess) -> None:
    health = httpx.get(f"{gateway.url}/healthz").json()
    temperatures = health.pop("temperatures")
    serving, proved = health.pop("serving"), health.pop("infra_validation")
    assert health.pop("pending_validation") == []  # start_gateway waited until both were proved
    assert health == {"status": "ok", "champion": "1", "canary": "2", "canary_percent": 0.0}
    assert set(temperatures) == {"champion", "canary"} and all(t > 0 for t in temperatures.values())
    assert serving == {"device": "cpu", "precision": "fp32"}  # the tests' configuration pins fp32
    # Both versions were proved on their stored golden sample before either was routed a request.
    assert set(proved) == {"1", "2"} and all(tag.startswith("passed: accuracy") for tag in proved.values())
    httpx.post(f"{gateway.url}/predict", json={"texts": ["a b", "c d"]})
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'bertloop_predictions_total{model_version="1",role="champion",status="ok"}' in metrics
    assert 'bertloop_infra_validation_passed{model_version="2"} 1.0' in metrics
    assert "bertloop_prediction_latency_seconds_bucket" in metrics


def test_sticky_canary_split_and_mirrored_agreement(gateway: GatewayProcess, two_versions: Registry) -> None:
    two_versions.set_canary_percent(50)
    deadline = time.monotonic() + 20
    while httpx.get(f"{gateway.url}/healthz").json()["canary_percent"] != 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    served = {}
    for caller in range(60):
        versions = {
            httpx.post(
                f"{gateway.url}/predict", json={"text": "goal"}, headers={"X-Caller-Key": f"c{caller}"}
            ).json()["predictions"][0]["model_version"]
            for _ in range(3)
        }
        assert len(versions) == 1, "a caller must always reach the same model"
        served[caller] = versions.pop()
    share = sum(version == "2" for version in served.values()) / len(served)
    assert 0.3 < share < 0.7
    two_versions.set_canary_percent(0)
    # Every canary answer gets the champion's opinion on the same text (for agreement), logged behind.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = prediction_rows(two_versions.config)
        mirrored = rows[rows["role"] == "shadow"]
        canary_answers = rows[rows["role"] == "canary"]
        if len(canary_answers) and set(canary_answers["request_id"]) <= set(mirrored["mirror_of"]):
            break
        time.sleep(0.2)
    assert len(canary_answers) > 0
    assert set(canary_answers["request_id"]) <= set(mirrored["mirror_of"])
    assert (mirrored["model_version"] == "1").all()
