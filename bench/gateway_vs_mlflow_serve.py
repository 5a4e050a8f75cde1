#!/usr/bin/env python
"""Throughput and latency of the bertloop gateway against `mlflow models serve`, same model, same load.

Both servers serve the registry's current champion on this machine, one
process each. The same client load (concurrent callers, one text per request,
texts drawn from the demo's held-out articles, those within
serving.max_text_chars) hits each in turn after a warm-up, and the script prints
requests per second, p50 and p99 latency, and
the gateway's ratio to MLflow's. The gateway runs once per serving precision
asked for (``--precisions``, default ``auto`` and ``int8``; ``auto`` is bf16 on a
CPU with avx512_bf16 or AMX and fp32 on others), and for each the script also
scores the whole golden set in that precision and in fp32, through the gateway's
runner and pass sizes, and prints both accuracies.

    make demo   # once: a workspace with a registered champion
    make down   # the stack the demo leaves up takes the cores in bursts
    .venv/bin/python bench/gateway_vs_mlflow_serve.py --config demo-workspace/bertloop.yaml

The script ends with one JSON line holding every figure it printed.
"""

from __future__ import annotations

import argparse
import json
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


def infra_refusal(health: str, process: subprocess.Popen, version: str, timeout: float = 600) -> str | None:
    """Wait until the gateway serves; the reason infra validation refused ``version`` if it did instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited with {process.returncode} before serving")
        try:
            response = httpx.get(health, timeout=5)
        except httpx.HTTPError:
            time.sleep(1)
            continue
        if response.status_code == 200:
            return None
        verdict = response.json().get("infra_validation", {}).get(version, "")
        if verdict.startswith("failed"):
            return verdict
        time.sleep(1)
    raise SystemExit(f"the gateway did not serve v{version} within {timeout:.0f} s")


def golden_accuracy(config, version: str, precision: str) -> tuple[str, float]:
    """The champion's accuracy on the whole golden set, scored in ``precision`` in the gateway's passes."""
    from intake.datasets import load_golden_set
    from modeling.hardware import inference_plan
    from modeling.runner import ClassifierRunner
    from registry.mlflow_registry import load_version
    from serving.batching import estimate_tokens, texts_per_pass

    plan = inference_plan(config.serving.device, requested_precision=precision)
    runner = ClassifierRunner.from_components(
        *load_version(config.registry.model_name, version), config.training.max_length, plan
    )
    golden = load_golden_set(config).frame
    texts = golden[config.data.text_column].astype(str).tolist()
    truth = golden[config.data.label_column].astype(str).tolist()
    estimates = [estimate_tokens(text, runner.max_length) for text in texts]
    answers: list[str] = []
    while len(answers) < len(texts):
        start = len(answers)
        count = texts_per_pass(
            estimates[start:], config.serving.max_batch_size, config.serving.max_batch_tokens
        )
        answers.extend(runner.score(texts[start : start + count], batch_size=count).labels)
    return plan.describe(), sum(a == t for a, t in zip(answers, truth, strict=True)) / len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(REPO_ROOT / "demo-workspace" / "bertloop.yaml"))
    parser.add_argument("--texts", default=str(REPO_ROOT / "demo-workspace" / "live-traffic.csv"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--precisions", default="auto,int8", help="serving.precision values to run")
    parser.add_argument(
        "--beside-stack", action="store_true", help="measure even while the workspace's stack is up"
    )
    args = parser.parse_args()

    from bertloop.core import env as env_defaults
    from bertloop.core.config import load_config
    from devtools.process import free_port, wait_until_healthy
    from devtools.stack import running_services
    from registry.mlflow_registry import connect, version_for_alias

    config = load_config(args.config)
    client = connect(config)
    champion = version_for_alias(client, config.registry.model_name, "champion")
    if champion is None:
        raise SystemExit("no champion registered; run `make demo` first or point --config at a workspace")
    if (alive := running_services(config.workspace)) and not args.beside_stack:
        raise SystemExit(
            f"the workspace's stack is up ({', '.join(alive)}): its scheduler, DAG processor and MLflow "
            "server take the cores in bursts, which shows as every server's p99; run `make down` first, "
            "or pass --beside-stack to measure anyway"
        )
    # Texts the gateway takes (serving.max_text_chars), so both servers answer the same load in full.
    column = pd.read_csv(args.texts)["text"].dropna().astype(str)
    texts = [text for text in column if text.strip() and len(text) <= config.serving.max_text_chars]
    if not texts:
        raise SystemExit(f"{args.texts} has no text within serving.max_text_chars to send")
    env = {
        **os.environ,
        "BERTLOOP_CONFIG": str(Path(args.config).resolve()),
        "MLFLOW_TRACKING_URI": config.tracking_uri,
        **env_defaults.DEFAULTS,
    }
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve runs `uvicorn`
    precisions = [name.strip() for name in args.precisions.split(",") if name.strip()]
    mlflow_port = free_port()
    mlflow_command = [str(bin_dir / "mlflow"), "models", "serve", "--env-manager", "local", "--workers", "1"]
    servers = {}
    for precision in precisions:
        port = free_port()
        # The gateway serves the champion alone, as MLflow does: no canary, no mirrored scoring.
        servers[f"gateway {precision}"] = (
            [sys.executable, "-m", "bertloop.pipeline.cli", "--set", "serving.shadow=false",
             "--set", f"serving.precision={precision}", "serve", "--port", str(port)],
            f"http://127.0.0.1:{port}/healthz",
            f"http://127.0.0.1:{port}/predict",
            lambda text: {"text": text},
        )  # fmt: skip
    servers.update({
        "mlflow models serve": (
            [*mlflow_command, "-m", f"models:/{config.registry.model_name}/{champion}",
             "--host", "127.0.0.1", "--port", str(mlflow_port)],
            f"http://127.0.0.1:{mlflow_port}/ping",
            f"http://127.0.0.1:{mlflow_port}/invocations",
            lambda text: {"inputs": [text]},
        ),
    })  # fmt: skip
    results = {}
    plans: dict[str, str] = {}
    refused: dict[str, str] = {}  # gateway precision -> why infra validation refused the champion in it
    for name, (command, health, endpoint, body) in servers.items():
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if name.startswith("gateway"):
                if reason := infra_refusal(health, process, champion):
                    refused[name] = reason
                    print(f"{name}: v{champion} refused by infra validation: {reason}", flush=True)
                    continue
                serving = httpx.get(health, timeout=30).json()["serving"]
                plans[name] = f"{serving['device']}/{serving['precision']}"
            else:
                wait_until_healthy(health, process, timeout=600)
            load(endpoint, body, texts, clients=2, requests_per_client=args.warmup)
            results[name] = load(endpoint, body, texts, args.clients, args.requests_per_client)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    print(f"model: {config.registry.model_name} v{champion}; {args.clients} concurrent clients, "
          f"{args.clients * args.requests_per_client} requests of one text each, per server")  # fmt: skip
    figures: dict[str, object] = {
        "clients": args.clients,
        "requests": args.clients * args.requests_per_client,
    }
    print(f"{'server':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, result in results.items():
        label = f"{name} ({plans[name]})" if name in plans else name
        print(f"{label:<30}{result['requests_per_s']:>10.1f}{result['p50_ms']:>10.1f}"
              f"{result['p99_ms']:>10.1f}{result['failures']:>8}")  # fmt: skip
        key = name.replace(" ", "_")
        figures.update({f"{key}_{metric}": value for metric, value in result.items()})
    theirs = results["mlflow models serve"]
    _, fp32_accuracy = golden_accuracy(config, champion, "fp32")
    figures["golden_accuracy_fp32"] = fp32_accuracy
    for name in plans:
        ours = results[name]
        throughput = ours["requests_per_s"] / theirs["requests_per_s"]
        p50, p99 = ours["p50_ms"] / theirs["p50_ms"], ours["p99_ms"] / theirs["p99_ms"]
        plan, accuracy = golden_accuracy(config, champion, name.removeprefix("gateway "))
        print(f"ratio ({name}, {plan} / mlflow): throughput x{throughput:.2f}, p50 x{p50:.2f}, "
              f"p99 x{p99:.2f}; golden-set accuracy {accuracy:.4f} in {plan} against {fp32_accuracy:.4f} "
              "in fp32")  # fmt: skip
        key = name.replace(" ", "_")
        figures.update({f"{key}_plan": plan, f"{key}_throughput_ratio": throughput, f"{key}_p50_ratio": p50,
                        f"{key}_p99_ratio": p99, f"{key}_golden_accuracy": accuracy})  # fmt: skip
    for name, reason in refused.items():
        plan, accuracy = golden_accuracy(config, champion, name.removeprefix("gateway "))
        print(f"{name} ({plan}): refused; golden-set accuracy {accuracy:.4f} (fp32: {fp32_accuracy:.4f})")
        key = name.replace(" ", "_")
        figures.update({f"{key}_plan": plan, f"{key}_refused": reason, f"{key}_golden_accuracy": accuracy})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
