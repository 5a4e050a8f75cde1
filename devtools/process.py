"""Starting a local server process and waiting until it answers.

The demo, the tests and the benchmarks all start servers (the gateway, ``mlflow
models serve``, Airflow, MLflow) on free local ports and must not send traffic
before they are up; the one way of doing that lives here.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


class ServerDidNotStart(RuntimeError):
    """The process exited, or did not answer its health check in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log_file: Path | None, lines: int = 40) -> str:
    if log_file is None or not log_file.exists():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"\nlast lines of {log_file}:\n" + "\n".join(tail)


def wait_until_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float,
    log_file: Path | None = None,
    interval: float = 0.3,
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(
                f"{url}: the server exited with code {process.returncode} before answering"
                + _log_tail(log_file)
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise ServerDidNotStart(f"{url} did not answer within {timeout:.0f} s" + _log_tail(log_file))


@dataclass
class GatewayProcess:
    """A ``bertloop serve`` process and where it listens."""

    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Ask the gateway to stop (SIGTERM drains the batcher and the log) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_gateway(
    log_file: Path,
    cli_options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> GatewayProcess:
    """Start ``bertloop [cli_options] serve`` on a free port and return once ``/healthz`` answers."""
    port = free_port()
    command = [sys.executable, "-m", "bertloop.pipeline.cli", *cli_options, "serve", "--port", str(port)]
    with log_file.open("ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            command, env=None if env is None else dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/healthz", process, timeout, log_file)
    except ServerDidNotStart:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return GatewayProcess(url, process, log_file)
