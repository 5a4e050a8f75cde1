"""A registry with two tiny-BERT versions, and a gateway process serving it over real HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pandas as pd
import pytest

from bertloop.core.config import PlatformConfig
from devtools import process
from devtools.process import GatewayProcess
from tests.conftest import Registry

__all__ = ["GatewayProcess", "Registry", "prediction_rows", "start_gateway"]


def start_gateway(
    config_file: Path, log_dir: Path, env: Mapping[str, str] | None = None, **overrides: str
) -> GatewayProcess:
    """``bertloop --config <file> [--set key=value ...] serve`` with its own log file (and ``env`` added
    to this process's environment)."""
    flags = [item for key, value in overrides.items() for item in ("--set", f"{key}={value}")]
    log_file = log_dir / f"gateway-{len(list(log_dir.glob('gateway-*.log')))}.log"
    gateway = process.start_gateway(
        log_file, ["--config", str(config_file), *flags], env={**os.environ, **(env or {})}, timeout=120
    )
    settle(gateway)
    return gateway


def settle(gateway: GatewayProcess, timeout: float = 60) -> dict[str, object]:
    """Wait until the gateway has proved every aliased version (it answers once the champion passed,
    and takes the canary on a later refresh); returns its /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(f"{gateway.url}/healthz", timeout=10).json()
        if not health.get("pending_validation") or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


@pytest.fixture(scope="module")
def gateway(two_versions: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    two_versions.set_canary_percent(0)
    gateway = start_gateway(two_versions.config_file, tmp_path_factory.mktemp("gateway"))
    yield gateway
    gateway.stop()


def prediction_rows(config: PlatformConfig) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(config.prediction_log_url)
    try:
        return pd.read_sql("SELECT * FROM predictions", engine)
    finally:
        engine.dispose()
