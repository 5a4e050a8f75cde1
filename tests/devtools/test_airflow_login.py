"""The local Airflow's login, without starting Airflow: the password file, the switch, what `up` prints.

tests/ui/test_trigger_form_browser.py checks the same login against a running API server.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest

from bertloop.pipeline import airflow_api
from devtools import airflow_login, stack
from devtools.airflow_login import LoginSetupError
from devtools.stack import Stack, airflow_environment
from tests.conftest import write_config


def test_the_password_is_made_once_in_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    password = airflow_login.ensure_password(tmp_path)
    path = airflow_login.passwords_file(tmp_path)
    assert password and len(password) >= 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"admin": password}  # the simple auth manager's format
    assert airflow_login.ensure_password(tmp_path) is None  # never made, nor shown, again
    assert json.loads(path.read_text()) == {"admin": password}
    assert airflow_login.stored_login(tmp_path) == airflow_api.AirflowLogin("admin", password)
    assert password not in repr(airflow_login.stored_login(tmp_path))


def test_a_passwords_file_others_can_read_is_refused(tmp_path: Path) -> None:
    airflow_login.ensure_password(tmp_path)
    airflow_login.passwords_file(tmp_path).chmod(0o644)
    with pytest.raises(LoginSetupError, match=r"readable by others .*chmod 600"):
        airflow_login.ensure_password(tmp_path)


@pytest.mark.parametrize(
    ("environ", "no_login", "wanted"),
    [({}, False, True), ({"BERTLOOP_AIRFLOW_LOGIN": "on"}, False, True), ({}, True, False),
     ({"BERTLOOP_AIRFLOW_LOGIN": "OFF"}, False, False), ({"BERTLOOP_AIRFLOW_LOGIN": "on"}, True, False)],
)  # fmt: skip
def test_login_is_on_unless_switched_off(environ: dict[str, str], no_login: bool, wanted: bool) -> None:
    assert airflow_login.login_wanted(environ, no_login) is wanted


def test_an_unknown_switch_value_is_refused() -> None:
    with pytest.raises(LoginSetupError, match=r"use 'on' .* or 'off'"):
        airflow_login.login_wanted({"BERTLOOP_AIRFLOW_LOGIN": "maybe"})


def test_airflow_gets_one_admin_and_the_tasks_its_password_file(tmp_path: Path) -> None:
    env = airflow_environment(tmp_path, tmp_path / "bertloop.yaml", 8123)
    path = str(airflow_login.passwords_file(tmp_path))
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == path
    assert env[airflow_api.ENV_URL] == "http://127.0.0.1:8123"
    assert env[airflow_api.ENV_USERNAME] == "admin" and env[airflow_api.ENV_PASSWORDS_FILE] == path
    assert airflow_api.ENV_PASSWORD not in env  # the password itself is in no process environment
    opted_out = airflow_environment(tmp_path, tmp_path / "bertloop.yaml", 8123, login=False)
    assert opted_out["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
    assert airflow_api.ENV_USERNAME not in opted_out


@pytest.fixture
def config_file(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A workspace for `main` as `make up` runs it, with the services' start left out (the browser
    test starts them)."""
    monkeypatch.setattr(Stack, "up", lambda self, only=None, timeout=240: None)
    return write_config(tmp_path, tiny_checkpoint, golden_frame)


def test_up_prints_the_password_the_first_time_only(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BERTLOOP_AIRFLOW_LOGIN", raising=False)
    assert stack.main(["up", "--config", str(config_file)]) == 0
    first = capsys.readouterr().out
    workspace = Stack(config_file).workspace
    password = airflow_login.stored_login(workspace).password
    path = str(airflow_login.passwords_file(workspace))
    assert f"user admin, password {password}" in first and path in first
    assert stack.main(["up", "--config", str(config_file)]) == 0
    second = capsys.readouterr()
    assert path in second.out and password not in second.out + second.err


def test_opting_out_warns_loudly(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BERTLOOP_AIRFLOW_LOGIN", "off")
    assert stack.main(["up", "--config", str(config_file)]) == 0
    assert "WARNING: the local Airflow has NO LOGIN" in capsys.readouterr().err
    assert not airflow_login.passwords_file(Stack(config_file).workspace).exists()
