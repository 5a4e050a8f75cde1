"""The local stack refuses a port another server holds: that server would answer its health checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest

from devtools.process import free_port
from devtools.stack import Ports, Stack, StackError
from tests.conftest import write_config


def test_a_taken_port_is_refused_before_anything_starts(
    tmp_path: Path, tiny_checkpoint: Path, golden_frame: pd.DataFrame
) -> None:
    config_file = write_config(tmp_path, tiny_checkpoint, golden_frame)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        stack = Stack(config_file, Ports(airflow=taken, mlflow=free_port(), gateway=free_port()))
        with pytest.raises(StackError, match=f"port {taken} for airflow-api-server is taken"):
            stack.up()
    assert not list((stack.folder / "pids").glob("*.pid"))  # nothing was started
    assert stack.describe()[0]["pid"] is None
