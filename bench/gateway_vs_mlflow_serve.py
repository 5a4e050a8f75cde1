#!/usr/bin/env python
"""Throughput and latency of the bertloop gateway against `mlflow models serve`, same model, same load.

Both servers serve the registry's current champion on this machine, one
process each. The same client load (concurrent callers, one text per request,
texts drawn from the demo's held-out articles) hits each in turn after a
warm-up, and the script prints requests per second, p50 and p99 latency, and
the gateway's ratio to MLflow's.

    make demo   # once: a workspace with a registered champion
    .venv/bin/python bench/gateway_vs_mlflow_serve.py --config demo-workspace/bertloop.yaml
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def load(url: str, make_body, texts: list[str], clients: int, requests_per_client: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def caller(offset: int) -> None:
        nonlocal failures
        with httpx.Client(timeout=120) as client:
            for index in range(requests_per_client):
                text = texts[(offset * requests_per_client + index) % len(texts)]
                started = time.perf_counter()
                response = client.post(url, json=make_body(text))
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        failures += 1

    threads = [threading.Thread(target=caller, args=(number,)) for number in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "failures": failures,
        "requests": len(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO_ROOT / "demo-workspace" / "bertloop.yaml"))
    parser.add_argument("--texts", default=str(REPO_ROOT / "demo-workspace" / "live-traffic.csv"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    from bertloop.core import env as env_defaults
    from bertloop.core.config import load_config
    from devtools.process import free_port, wait_until_healthy
    from registry.mlflow_registry import connect, version_for_alias

    config = load_config(args.config)
    client = connect(config)
    champion = version_for_alias(client, config.registry.model_name, "champion")
    if champion is None:
        raise SystemExit("no champion registered; run `make demo` first or point --config at a workspace")
    texts = pd.read_csv(args.texts)["text"].tolist()
    env = {
        **os.environ,
        "BERTLOOP_CONFIG": str(Path(args.config).resolve()),
        "MLFLOW_TRACKING_URI": config.tracking_uri,
        **env_defaults.DEFAULTS,
    }
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve runs `uvicorn`
    gateway_port, mlflow_port = free_port(), free_port()
    # The gateway serves the champion alone, as MLflow does: no canary, no mirrored scoring.
    gateway_command = [sys.executable, "-m", "bertloop.pipeline.cli", "--set", "serving.shadow=false"]
    mlflow_command = [str(bin_dir / "mlflow"), "models", "serve", "--env-manager", "local", "--workers", "1"]
    servers = {
        "bertloop gateway": (
            [*gateway_command, "serve", "--port", str(gateway_port)],
            f"http://127.0.0.1:{gateway_port}/healthz",
            f"http://127.0.0.1:{gateway_port}/predict",
            lambda text: {"text": text},
        ),
        "mlflow models serve": (
            [*mlflow_command, "-m", f"models:/{config.registry.model_name}/{champion}",
             "--host", "127.0.0.1", "--port", str(mlflow_port)],
            f"http://127.0.0.1:{mlflow_port}/ping",
            f"http://127.0.0.1:{mlflow_port}/invocations",
            lambda text: {"inputs": [text]},
        ),
    }  # fmt: skip
    results = {}
    for name, (command, health, endpoint, body) in servers.items():
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_healthy(health, process, timeout=240)
            load(endpoint, body, texts, clients=2, requests_per_client=args.warmup)
            results[name] = load(endpoint, body, texts, args.clients, args.requests_per_client)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    print(f"model: {config.registry.model_name} v{champion}; {args.clients} concurrent clients, "
          f"{args.clients * args.requests_per_client} requests of one text each, per server")  # fmt: skip
    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, figures in results.items():
        print(f"{name:<22}{figures['requests_per_s']:>10.1f}{figures['p50_ms']:>10.1f}"
              f"{figures['p99_ms']:>10.1f}{figures['failures']:>8}")  # fmt: skip
    ours, theirs = results["bertloop gateway"], results["mlflow models serve"]
    print(
        f"ratio (gateway / mlflow): throughput x{ours['requests_per_s'] / theirs['requests_per_s']:.2f}, "
        f"p50 x{ours['p50_ms'] / theirs['p50_ms']:.2f}, p99 x{ours['p99_ms'] / theirs['p99_ms']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
