"""The local Airflow's login: the simple auth manager with one admin, whose password is made once.

The first ``up`` of a workspace generates the password, writes it to
``<workspace>/airflow/simple_auth_manager_passwords.json`` (the simple auth manager's own format,
``{"admin": "<password>"}``), created readable by its owner only, and prints it that once; later
``up`` runs print only where it is. The tasks and the dev tools log in with the same file.

Opting out (``--no-login``, ``BERTLOOP_AIRFLOW_LOGIN=off``, ``make up AIRFLOW_LOGIN=off``) keeps
Airflow's all-admins mode, where every visitor is an admin, with a loud warning.

The JWT secret needs nothing here: the first Airflow command on a home writes a generated
``[api_auth] jwt_secret`` into ``<workspace>/airflow/airflow.cfg`` (mode 0600), and every service
reads it from there, so tokens outlive restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bertloop.pipeline import airflow_api
from bertloop.pipeline.airflow_api import AirflowLogin

USERNAME = "admin"
ENV_SWITCH = "BERTLOOP_AIRFLOW_LOGIN"
SWITCH_VALUES = {"on": True, "off": False}


class LoginSetupError(RuntimeError):
    """The login cannot be set up as asked; the message says what to change."""


def passwords_file(workspace: Path) -> Path:
    return workspace / "airflow" / "simple_auth_manager_passwords.json"


def login_wanted(environ: Mapping[str, str], no_login: bool = False) -> bool:
    """On unless ``--no-login`` or ``BERTLOOP_AIRFLOW_LOGIN=off``."""
    value = environ.get(ENV_SWITCH, "on").strip().lower() or "on"
    if value not in SWITCH_VALUES:
        raise LoginSetupError(f"{ENV_SWITCH}={value!r}: use 'on' (the default) or 'off'")
    return SWITCH_VALUES[value] and not no_login


def environment(workspace: Path, login: bool) -> dict[str, str]:
    """Airflow's auth settings, and the tasks' own login to the REST API (by file, never the password)."""
    if not login:
        return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    path = str(passwords_file(workspace))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",  # also over a value in the shell
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": path,
        airflow_api.ENV_USERNAME: USERNAME,
        airflow_api.ENV_PASSWORDS_FILE: path,
    }


def ensure_password(workspace: Path) -> str | None:
    """Create the passwords file with a new password; return it, or None when the file was there."""
    path = passwords_file(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    try:  # O_EXCL: created here, 0600 from its first byte, and never overwritten
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise LoginSetupError(
                f"{path} holds the Airflow admin's password but is readable by others (mode {mode:o}); "
                f"`chmod 600 {path}`"
            ) from None
        return None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({USERNAME: password}) + "\n")
    return password


def stored_login(workspace: Path) -> AirflowLogin:
    return AirflowLogin.from_passwords_file(passwords_file(workspace), USERNAME)


def describe(workspace: Path, login: bool, new_password: str | None, port: int) -> str:
    """What ``up`` prints about the login: the password only the once it was made."""
    path = passwords_file(workspace)
    if not login:
        return (
            f"!!! WARNING: the local Airflow has NO LOGIN (--no-login / {ENV_SWITCH}=off): anyone who can "
            f"reach 127.0.0.1:{port} is an admin. Run `make up` without it to get a login. !!!"
        )
    if new_password is not None:
        return (
            f"Airflow login: user {USERNAME}, password {new_password} (shown this once; stored in {path}, "
            "mode 0600)"
        )
    return f"Airflow login: user {USERNAME}; the password is in {path} (mode 0600)"


def sign_in(page: Any, airflow_url: str, login: AirflowLogin | None) -> None:
    """Log a Playwright page in through Airflow's login page (nothing to do without a login)."""
    if login is None:
        return
    page.goto(f"{airflow_url}/auth/login", wait_until="networkidle")
    page.locator("input[name='username']").fill(login.username)
    page.locator("input[name='password']").fill(login.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
