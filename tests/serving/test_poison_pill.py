"""One hostile request must not take the gateway down: text that is not valid Unicode, a bad text
batched with good ones, and a prediction log that can no longer be written."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from bertloop.core.config import PlatformConfig
from tests.serving.conftest import GatewayProcess, Registry, prediction_rows

pytestmark = pytest.mark.processes
# Valid JSON, but not valid Unicode: a lone surrogate, as a hostile or broken client sends it.
POISON = '{"text": "abc \\ud800 def"}'


def _post(url: str, raw: str) -> httpx.Response:
    return httpx.post(url, content=raw.encode(), headers={"content-type": "application/json"}, timeout=60)


def test_a_lone_surrogate_gets_a_422_naming_the_field_and_the_gateway_keeps_serving(
    gateway: GatewayProcess, two_versions: Registry
) -> None:
    before = len(prediction_rows(two_versions.config))
    response = _post(f"{gateway.url}/predict", POISON)
    assert response.status_code == 422 and "text" in response.text and "surrogate" in response.text
    for raw in (
        '{"texts": ["fine", "bad \\udfff"]}',
        '{"text": "fine", "caller_key": "\\ud83d"}',
    ):
        assert _post(f"{gateway.url}/predict", raw).status_code == 422, raw
    feedback = _post(f"{gateway.url}/feedback", '{"request_id": "\\ud800", "label": "sport"}')
    assert feedback.status_code == 422 and "request_id" in feedback.text
    # Still serving, still logging, still healthy.
    good = httpx.post(f"{gateway.url}/predict", json={"text": "goal match team"}, timeout=60)
    assert good.status_code == 200
    answer = good.json()["predictions"][0]
    request_id = answer["request_id"]
    body = {"request_id": request_id, "label": "sport", "feedback_token": answer["feedback_token"]}
    assert httpx.post(f"{gateway.url}/feedback", json=body).status_code == 201
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    rows = prediction_rows(two_versions.config)
    assert len(rows) == before + 1 and request_id in set(rows["request_id"])


def test_concurrent_callers_beside_a_poisoned_request_are_all_answered(gateway: GatewayProcess) -> None:
    # 20 concurrent callers share micro-batches; the poisoned one is refused at the edge, none fails.
    statuses: list[int] = []

    def call(text: str) -> None:
        statuses.append(httpx.post(f"{gateway.url}/predict", json={"text": text}, timeout=60).status_code)

    threads = [threading.Thread(target=call, args=(f"vote party election {i}",)) for i in range(20)]
    threads.append(
        threading.Thread(target=lambda: statuses.append(_post(f"{gateway.url}/predict", POISON).status_code))
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 20 + [422]


def test_a_prediction_log_that_cannot_be_written_turns_healthz_red(
    two_versions: Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import sqlalchemy as sa

    from tests.serving.conftest import start_gateway

    config: PlatformConfig = two_versions.config
    own_log = f"sqlite:///{tmp_path_factory.mktemp('broken-log') / 'predictions.db'}"
    gateway = start_gateway(
        two_versions.config_file,
        tmp_path_factory.mktemp("gateway-broken"),
        **{"serving.prediction_log_url": own_log},
    )
    try:
        assert httpx.post(f"{gateway.url}/predict", json={"text": "goal"}, timeout=60).status_code == 200
        engine = sa.create_engine(own_log)
        with engine.begin() as connection:  # the database loses the table under the running gateway
            connection.execute(sa.text("DROP TABLE predictions"))
        engine.dispose()
        httpx.post(f"{gateway.url}/predict", json={"text": "goal"}, timeout=60)  # its row cannot be written
        deadline = time.monotonic() + 30
        while httpx.get(f"{gateway.url}/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        health = httpx.get(f"{gateway.url}/healthz")
        assert health.status_code == 503 and "predictions" in json.dumps(health.json())
        refused = httpx.post(f"{gateway.url}/predict", json={"text": "goal"}, timeout=60)
        assert refused.status_code == 503 and "prediction log" in refused.text
    finally:
        gateway.stop()
    assert config.registry.model_name  # the shared registry was only read
