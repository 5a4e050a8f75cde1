"""bertloop's own calls to Airflow's REST API (v2), logged in where Airflow asks for a login.

Tasks have no API of their own for a run's note, so they write it through the REST API like any
client. Where that API is, and who calls it, come from the environment the stack sets:

- ``BERTLOOP_AIRFLOW_API_URL``: the API server (no calls without it);
- ``BERTLOOP_AIRFLOW_API_USERNAME``: the user to log in as (no login without it, for an Airflow
  whose simple auth manager makes every visitor an admin);
- its password in ``BERTLOOP_AIRFLOW_API_PASSWORD``, or else in ``BERTLOOP_AIRFLOW_API_PASSWORDS_FILE``,
  the simple auth manager's own passwords file (JSON, user name -> password), so the local stack
  never copies the password into a process environment.

A login is Airflow 3's ``POST /auth/token``, which answers with a JWT for ``Authorization: Bearer``.
No Airflow import: this is an HTTP client, usable by the tasks and by the dev tools alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ENV_URL = "BERTLOOP_AIRFLOW_API_URL"
ENV_USERNAME = "BERTLOOP_AIRFLOW_API_USERNAME"
ENV_PASSWORD = "BERTLOOP_AIRFLOW_API_PASSWORD"
ENV_PASSWORDS_FILE = "BERTLOOP_AIRFLOW_API_PASSWORDS_FILE"
ENV_NAMES = (ENV_URL, ENV_USERNAME, ENV_PASSWORD, ENV_PASSWORDS_FILE)


class AirflowLoginError(RuntimeError):
    """No login can be made: a missing password, or Airflow refused it; the message says which."""


@dataclass(frozen=True)
class AirflowLogin:
    username: str
    password: str = field(repr=False)

    @classmethod
    def from_passwords_file(cls, path: Path, username: str) -> AirflowLogin:
        """The user's password from a simple auth manager passwords file."""
        try:
            passwords = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise AirflowLoginError(f"cannot read the Airflow passwords file {path}: {error}") from None
        if not isinstance(passwords, dict) or not passwords.get(username):
            raise AirflowLoginError(f"{path} holds no password for the Airflow user {username!r}")
        return cls(username, str(passwords[username]))


def login_from_environment(environ: Mapping[str, str] | None = None) -> AirflowLogin | None:
    """The login the environment configures; None where it names no user (Airflow without a login)."""
    environ = os.environ if environ is None else environ
    if not (username := environ.get(ENV_USERNAME, "").strip()):
        return None
    if password := environ.get(ENV_PASSWORD, ""):
        return AirflowLogin(username, password)
    if passwords_file := environ.get(ENV_PASSWORDS_FILE, "").strip():
        return AirflowLogin.from_passwords_file(Path(passwords_file), username)
    raise AirflowLoginError(f"{ENV_USERNAME} is set but neither {ENV_PASSWORD} nor {ENV_PASSWORDS_FILE} is")


def access_token(base_url: str, login: AirflowLogin, timeout: float = 10) -> str:
    """A JWT from Airflow's auth manager for ``login`` (``POST /auth/token``)."""
    response = httpx.post(
        f"{base_url.rstrip('/')}/auth/token",
        json={"username": login.username, "password": login.password},
        timeout=timeout,
    )
    if not response.is_success:
        raise AirflowLoginError(
            f"Airflow refused the login of {login.username!r} ({response.status_code}: {response.text[:200]})"
        )
    return str(response.json()["access_token"])


def auth_headers(base_url: str, login: AirflowLogin | None, timeout: float = 10) -> dict[str, str]:
    """The headers that authenticate a request as ``login``; none for an Airflow without a login."""
    if login is None:
        return {}
    return {"Authorization": f"Bearer {access_token(base_url, login, timeout)}"}


def patch_run_note(
    base_url: str, login: AirflowLogin | None, dag_id: str, run_id: str, note: str, timeout: float = 10
) -> httpx.Response:
    """Set the note of one DAG run; the response tells whether Airflow took it."""
    return httpx.patch(
        f"{base_url.rstrip('/')}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}",
        params={"update_mask": "note"},
        json={"note": note[:1000]},
        headers=auth_headers(base_url, login, timeout),
        timeout=timeout,
    )
