"""The gateway's secret and API keys, read by reference (environment or a file), never from the YAML.

The secret keys the feedback tokens and the caller hashes in the prediction log. It comes from
``BERTLOOP_GATEWAY_SECRET``, else ``serving.secret_file``, else ``<workspace>/gateway-secret``, which
is created readable by its owner only (0600) on first use, so a restart keeps issued tokens valid.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from bertloop.core.config import ConfigError, PlatformConfig

ENV_GATEWAY_SECRET = "BERTLOOP_GATEWAY_SECRET"
ENV_API_KEYS = "BERTLOOP_API_KEYS"
MIN_SECRET_CHARS = 32


def gateway_secret(config: PlatformConfig, environ: Mapping[str, str] | None = None) -> bytes:
    """The secret from the environment, the configured file, or the workspace (made on first use)."""
    environ = os.environ if environ is None else environ
    if value := environ.get(ENV_GATEWAY_SECRET, "").strip():
        return _checked(value, ENV_GATEWAY_SECRET)
    if config.serving.secret_file is not None:
        path = config.serving.secret_file
        if not path.is_file():
            raise ConfigError(f"serving.secret_file {path} does not exist; create it or unset the setting")
        return _checked(path.read_text(encoding="utf-8").strip(), str(path))
    path = config.workspace / "gateway-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two gateways starting at once keep one secret
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    return _checked(path.read_text(encoding="utf-8").strip(), str(path))


def api_key_lines(config: PlatformConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """The key lines of ``serving.api_keys_file`` and of ``BERTLOOP_API_KEYS`` (lines or ';'-separated)."""
    environ = os.environ if environ is None else environ
    lines: list[str] = []
    if (path := config.serving.api_keys_file) is not None:
        if not path.is_file():
            raise ConfigError(f"serving.api_keys_file {path} does not exist; create it or unset the setting")
        lines += path.read_text(encoding="utf-8").splitlines()
    lines += environ.get(ENV_API_KEYS, "").replace(";", "\n").splitlines()
    return lines


def _checked(value: str, source: str) -> bytes:
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"the gateway secret from {source} has {len(value)} characters; use at least {MIN_SECRET_CHARS} "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return value.encode()
