"""The gateway against its own published contract, and against anything a client can send.

Schemathesis generates requests from ``/openapi.json`` (valid and invalid ones) and runs every check on
the answers of a real gateway process: status codes and bodies as declared, the one error body, valid
data accepted, invalid data refused, requests without a key refused. A Hypothesis property then sends
arbitrary JSON and Unicode (lone surrogates included) to /predict: never a 5xx, the gateway keeps
serving, and every answered prediction has exactly one row in the prediction log. Both are bounded
and derandomized, so a run is repeatable and takes well under a minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from tests.serving.conftest import GatewayProcess, Registry, start_gateway

pytestmark = pytest.mark.processes

KEY = "contract-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALLER = "property-test-caller"
BOUNDED = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def served(
    two_versions: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with one all-scope key and a prediction log of its own, so its rows can be counted."""
    folder = tmp_path_factory.mktemp("contract")
    log_url = f"sqlite:///{folder / 'predictions.db'}"
    two_versions.set_canary_percent(0)
    gateway = start_gateway(
        two_versions.config_file,
        folder,
        env={"BERTLOOP_API_KEYS": f"{KEY} predict,feedback,metrics contract"},
        **{"serving.prediction_log_url": log_url, "serving.max_texts_per_request": "8"},
    )
    yield gateway, log_url
    gateway.stop()


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        *[
            (method, path, mode)
            for method, path in (("POST", "/predict"), ("POST", "/feedback"), ("GET", "/metrics"))
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ],
        ("GET", "/healthz", GenerationMode.POSITIVE),  # no parameters: nothing to make invalid
    ],
)
def test_every_answer_keeps_the_published_contract(
    served: tuple[GatewayProcess, str], method: str, path: str, mode: GenerationMode
) -> None:
    url = served[0].url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operation = schema[path][method]

    @BOUNDED
    @given(case=operation.as_strategy(generation_mode=mode))
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=AUTH)

    conforms()


def test_the_error_body_and_limits_are_in_the_schema(served: tuple[GatewayProcess, str]) -> None:
    document = httpx.get(f"{served[0].url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["detail"]
    for path, method in (("/predict", "post"), ("/feedback", "post"), ("/metrics", "get")):
        responses = document["paths"][path][method]["responses"]
        for status in ("401", "403", *(["422", "429"] if method == "post" else [])):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    predict = schemas["PredictRequest"]["properties"]
    assert predict["texts"]["maxItems"] == 8 and predict["text"]["maxLength"] == 10_000


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Any code point, lone surrogates included: json.dumps escapes them (\\udXXX) as a hostile client would.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
BODIES = st.one_of(
    st.fixed_dictionaries({"text": ANY_TEXT}),
    st.fixed_dictionaries({"texts": st.lists(ANY_TEXT, max_size=10)}),
    st.fixed_dictionaries({"text": ANY_TEXT}, optional={"caller_key": ANY_TEXT, "texts": st.lists(ANY_TEXT)}),
    st.dictionaries(st.sampled_from(["text", "texts", "caller_key", "model"]), JSON_VALUES, max_size=3),
    JSON_VALUES,
)


def test_arbitrary_bodies_never_get_a_5xx_and_every_answer_is_logged(
    served: tuple[GatewayProcess, str],
) -> None:
    gateway, log_url = served
    answered: list[str] = []

    @settings(BOUNDED, max_examples=60)
    @given(body=BODIES, raw=st.none() | st.binary(max_size=40))
    def survives(body: Any, raw: bytes | None) -> None:
        content = raw if raw is not None else json.dumps(body).encode()
        headers = {**AUTH, "Content-Type": "application/json", "X-Caller-Key": CALLER}
        response = httpx.post(f"{gateway.url}/predict", content=content, headers=headers, timeout=60)
        assert response.status_code < 500, (content, response.text)
        assert "detail" in response.json() or response.status_code == 200
        if response.status_code == 200:
            answered.extend(p["request_id"] for p in response.json()["predictions"])

    survives()
    assert answered, "no generated body was a valid request; the property proved nothing about logging"
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    marker = httpx.post(
        f"{gateway.url}/predict", json={"text": "marker"}, headers={**AUTH, "X-Caller-Key": CALLER}
    )
    answered.append(marker.json()["predictions"][0]["request_id"])
    # This test's rows are those with its caller's hash (the schema tests before it logged rows too).
    query = sa.text(
        "SELECT request_id FROM predictions WHERE role != 'shadow' AND caller_hash = "
        "(SELECT caller_hash FROM predictions WHERE request_id = :marker)"
    )
    deadline = time.monotonic() + 30
    engine = sa.create_engine(log_url)
    try:
        while True:
            with engine.connect() as connection:
                logged = [row.request_id for row in connection.execute(query, {"marker": answered[-1]})]
            if len(logged) >= len(answered) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    assert sorted(logged) == sorted(answered) and len(set(answered)) == len(answered)
