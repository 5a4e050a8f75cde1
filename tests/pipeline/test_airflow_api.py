"""Who the tasks log in to Airflow's REST API as, read from the environment the stack sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertloop.pipeline.airflow_api import (
    ENV_PASSWORD,
    ENV_PASSWORDS_FILE,
    ENV_USERNAME,
    AirflowLogin,
    AirflowLoginError,
    auth_headers,
    login_from_environment,
)


def test_no_user_means_no_login() -> None:
    assert login_from_environment({}) is None
    assert auth_headers("http://127.0.0.1:9", None) == {}  # no request is made


def test_the_password_comes_from_the_environment_or_the_passwords_file(tmp_path: Path) -> None:
    from_environment = login_from_environment({ENV_USERNAME: "ops", ENV_PASSWORD: "s3cret"})
    assert from_environment == AirflowLogin("ops", "s3cret")
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "from-file", "ops": "other"}))
    environ = {ENV_USERNAME: "admin", ENV_PASSWORDS_FILE: str(passwords)}
    assert login_from_environment(environ) == AirflowLogin("admin", "from-file")


@pytest.mark.parametrize(
    ("extra", "message"),
    [({}, "neither"), ({ENV_PASSWORDS_FILE: "/nonexistent/passwords.json"}, "cannot read"),
     ({ENV_PASSWORDS_FILE: "{file}"}, "no password for the Airflow user 'admin'")],
)  # fmt: skip
def test_a_login_without_a_password_says_what_is_missing(
    tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"someone-else": "x"}))
    environ = {ENV_USERNAME: "admin", **{k: v.format(file=passwords) for k, v in extra.items()}}
    with pytest.raises(AirflowLoginError, match=message):
        login_from_environment(environ)


def test_an_api_server_that_does_not_answer_is_an_http_error() -> None:
    """What set_run_note catches; a refused login is checked against a real API server in tests/ui."""
    import httpx

    with pytest.raises(httpx.HTTPError):  # nothing listens on port 9
        auth_headers("http://127.0.0.1:9", AirflowLogin("admin", "x"), timeout=2)
