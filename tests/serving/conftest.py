"""A registry with two tiny-BERT versions, and a gateway process serving it over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from bertloop.config import PlatformConfig
from tests.conftest import Registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_gateway(config_file: Path, log_dir: Path, **overrides: str) -> GatewayProcess:
    port = free_port()
    log_file = log_dir / f"gateway-{port}.log"
    flags = [item for key, value in overrides.items() for item in ("--set", f"{key}={value}")]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bertloop.cli",
            "--config",
            str(config_file),
            *flags,
            "serve",
            "--port",
            str(port),
        ],
        stdout=log_file.open("wb"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{log_file.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return GatewayProcess(url, process, log_file)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise TimeoutError(f"gateway did not become healthy:\n{log_file.read_text()}")


@pytest.fixture(scope="module")
def gateway(two_versions: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    two_versions.set_canary_percent(0)
    process = start_gateway(two_versions.config_file, tmp_path_factory.mktemp("gateway"))
    yield process
    process.stop()


def prediction_rows(config: PlatformConfig) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(config.prediction_log_url)
    try:
        return pd.read_sql("SELECT * FROM predictions", engine)
    finally:
        engine.dispose()
