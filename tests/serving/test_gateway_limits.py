"""Limits before parsing: oversized bodies, unknown Host headers, and identifiers too long to echo."""

from __future__ import annotations

import httpx
import pytest

from tests.serving.conftest import GatewayProcess

pytestmark = pytest.mark.processes


def test_an_oversized_body_is_a_413_before_it_is_read(gateway: GatewayProcess) -> None:
    texts = ["word " * 2000] * 1000  # ~10 MB, over the default 8 MiB
    declared = httpx.post(f"{gateway.url}/predict", json={"texts": texts}, timeout=60)
    assert declared.status_code == 413, declared.status_code
    assert "request body over" in declared.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it streams
        yield b'{"texts": ["'
        for _ in range(1000):
            yield b"word " * 2000
        yield b'"]}'

    streamed = httpx.post(
        f"{gateway.url}/predict", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert streamed.status_code == 413
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_an_unknown_host_header_is_refused(gateway: GatewayProcess) -> None:
    rebound = httpx.post(
        f"{gateway.url}/predict", json={"text": "goal"}, headers={"Host": "attacker.example"}, timeout=60
    )
    assert rebound.status_code == 400 and "serving.trusted_hosts" in rebound.json()["detail"]
    assert httpx.post(f"{gateway.url}/predict", json={"text": "goal"}, timeout=60).status_code == 200


def test_a_huge_request_id_is_refused_without_being_echoed(gateway: GatewayProcess) -> None:
    huge = "x" * 1_000_000
    response = httpx.post(f"{gateway.url}/feedback", json={"request_id": huge, "label": "sport"}, timeout=60)
    assert response.status_code == 422 and "request_id" in response.text
    assert len(response.content) < 1000
    too_long_key = httpx.post(f"{gateway.url}/predict", json={"text": "goal", "caller_key": "k" * 300})
    assert too_long_key.status_code == 422 and len(too_long_key.content) < 1000


HUGE = "y" * 1_000_000  # under the body limit, so the checks after parsing answer it


def test_an_unknown_label_is_refused_without_being_echoed(gateway: GatewayProcess) -> None:
    body = {"request_id": "r1", "label": HUGE, "feedback_token": "v1.1.abc"}
    response = httpx.post(f"{gateway.url}/feedback", json=body, timeout=60)
    assert response.status_code == 422 and "label" in response.text and len(response.content) < 1000


def test_an_unknown_field_is_refused_without_being_echoed(gateway: GatewayProcess) -> None:
    response = httpx.post(f"{gateway.url}/predict", json={"text": "goal", HUGE: 1}, timeout=60)
    assert response.status_code == 422 and len(response.content) < 1000
