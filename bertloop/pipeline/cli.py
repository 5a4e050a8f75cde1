"""The `bertloop` command line: every step of the retraining loop, and the loop, without Airflow.

It calls the same step functions as the Airflow DAG. Steps of one run share a
run key; each step reads what the steps before it wrote under that key.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bertloop import __version__
from bertloop.core.config import ConfigError, PlatformConfig, load_config
from bertloop.core.env import apply_env_defaults
from bertloop.pipeline.manifests import StepManifest

EXAMPLES = """\
examples:
  bertloop run data/batch-01.csv                 # the whole loop on one batch
  bertloop run                                   # the oldest batch waiting in data.landing_dir
  bertloop --set training.epochs=1 run data/batch-02.jsonl
  bertloop ingest data/batch-01.csv --run-key try1 && bertloop validate --run-key try1
  bertloop models                                # versions, aliases, metrics, decisions
  bertloop serve --port 8000                     # the gateway: champion, canary, prediction log
  bertloop canary                                # ramp the challenger; promote or roll back
  bertloop rollback --reason "refund intents"    # previous_champion becomes champion again
  bertloop drift                                 # check the last window of live traffic for drift
  bertloop drift --history                       # every drift check: score, accuracy, verdict
  bertloop ledger                                # every alias change, who and why
  bertloop config                                # the configuration in effect

The configuration comes from --config (or $BERTLOOP_CONFIG), then environment variables
such as BERTLOOP_TRAINING__EPOCHS=3, then --set flags.
"""

STEP_HELP = {
    "ingest": "copy a labelled batch (CSV, JSONL, Parquet) into the workspace",
    "validate": "check the batch with Great Expectations; quarantine it if it fails",
    "version": "version the accepted batch and the golden set with DVC",
    "train": "fine-tune the base checkpoint on the versioned training snapshot",
    "evaluate": "score candidate and champion on the golden set and decide",
    "register": "log and register the model in MLflow; alias it if blessed",
}

EXIT_REJECTED = 3
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertloop",
        description="Validate, version, fine-tune, evaluate and register BERT text classifiers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bertloop {__version__}")
    parser.add_argument("--config", help="YAML configuration file (default: $BERTLOOP_CONFIG)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set training.epochs=1 (repeatable)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole loop on one batch")
    run.add_argument("data_path", nargs="?", help="batch file; omitted: oldest file in data.landing_dir")
    run.add_argument("--run-key", help="name of this run (default: cli-<UTC time>)")

    ingest = commands.add_parser("ingest", help=STEP_HELP["ingest"])
    ingest.add_argument("data_path", nargs="?", help="batch file; omitted: oldest file in data.landing_dir")
    ingest.add_argument("--run-key", required=True, help="name of this run; later steps use the same key")
    for step in ("validate", "version", "train", "evaluate", "register"):
        command = commands.add_parser(step, help=STEP_HELP[step])
        command.add_argument("--run-key", required=True, help="the key given to `bertloop ingest`")

    serve = commands.add_parser("serve", help="run the serving gateway (champion, canary, prediction log)")
    serve.add_argument("--host", help="default: serving.host")
    serve.add_argument("--port", type=int, help="default: serving.port")
    commands.add_parser("canary", help="roll the challenger out through the gateway; promote or roll back")
    rollback = commands.add_parser("rollback", help="restore previous_champion as champion in one step")
    rollback.add_argument("--reason", required=True, help="why; recorded in the promotion ledger")
    drift = commands.add_parser(
        "drift",
        help="check the last window of live traffic for drift (what the drift DAG runs), or show the history",
    )
    drift.add_argument("--history", action="store_true", help="list earlier checks instead of running one")
    drift.add_argument(
        "--retrains-running",
        type=int,
        default=0,
        help="retrains already running elsewhere, for storm control (the DAG asks Airflow; default 0)",
    )
    readmit = commands.add_parser(
        "readmit", help="let a suspect batch (its model was not blessed) back into later training snapshots"
    )
    readmit.add_argument("batch_id", help="as listed by `bertloop ledger` (batch_suspect entries)")
    readmit.add_argument("--reason", required=True, help="why; recorded in the promotion ledger")
    commands.add_parser("ledger", help="show every alias change: when, who, from which version to which")
    commands.add_parser("models", help="list registered versions with aliases, metrics and decisions")
    commands.add_parser("config", help="print the configuration in effect, validated")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_env_defaults()
    try:
        overrides = _parse_overrides(args.overrides)
        config = load_config(args.config, overrides=overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args, config)
    except Exception as error:  # boundaries: known errors become one clear line and an exit code
        if args.command in ("train", "evaluate", "register"):
            from bertloop.pipeline.steps import mark_run_failed

            mark_run_failed(config, args.run_key)  # `run` does this itself
        return _report(error)


def _dispatch(args: argparse.Namespace, config: PlatformConfig) -> int:
    # Imported here, not at the top: `bertloop --help` and `bertloop config` need no torch.
    from bertloop.pipeline import steps

    if args.command == "config":
        print(json.dumps(config.model_dump(mode="json"), indent=2))
        return 0
    if args.command == "serve":
        import uvicorn

        from serving.app import create_app

        host = args.host or config.serving.host
        uvicorn.run(
            create_app(config, bind_host=host),
            host=host,
            port=args.port or config.serving.port,
            timeout_graceful_shutdown=int(config.serving.graceful_shutdown_seconds),
            log_level="info",
        )
        return 0
    if args.command == "canary":
        from rollout.controller import run_canary

        print(json.dumps(run_canary(config, actor=f"cli:{getpass.getuser()}"), indent=2, default=str))
        return 0
    if args.command == "rollback":
        from rollout.controller import restore_previous_champion

        outcome = restore_previous_champion(config, actor=f"cli:{getpass.getuser()}", reason=args.reason)
        print(json.dumps(outcome, indent=2))
        return 0
    if args.command == "readmit":
        outcome = steps.readmit(config, args.batch_id, actor=f"cli:{getpass.getuser()}", reason=args.reason)
        print(json.dumps(outcome, indent=2))
        return 0
    if args.command == "drift":
        return _drift(config, args)
    if args.command == "ledger":
        from bertloop.core.stores.ledger import Ledger, format_entries

        print(format_entries(Ledger(config.ledger_url).entries(config.registry.model_name)))
        return 0
    if args.command == "models":
        from registry.summary import format_table, registry_rows

        print(format_table(registry_rows(config)))
        return 0
    result: StepManifest
    if args.command == "run":
        run_key = args.run_key or f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        result = steps.run_all(config, run_key, args.data_path)
    elif args.command == "ingest":
        result = steps.ingest(config, args.run_key, args.data_path)
    else:
        result = getattr(steps, args.command)(config, args.run_key)
    print(result.model_dump_json(indent=2))
    return 0


def _drift(config: PlatformConfig, args: argparse.Namespace) -> int:
    from bertloop.core.stores.drift_history import DriftHistory
    from bertloop.pipeline.steps import training_texts
    from drift.check import run_check
    from drift.report import format_timeline

    if args.history:
        print(format_timeline(DriftHistory(config.ledger_url).timeline()))
        return 0
    outcome = run_check(
        config, lambda version: training_texts(config, version), retrains_running=args.retrains_running
    )
    shown = outcome.model_dump(exclude={"signals", "ts", "snapshot"})
    print(json.dumps(shown | {"fired": outcome.fired}, indent=2, default=str))
    if outcome.triggered:
        print(
            f"feedback exported to {outcome.data_path}; retrain on it with "
            f"`bertloop run {outcome.data_path}` (the drift DAG starts the retrain DAG itself)",
            file=sys.stderr,
        )
    return 0


def _report(error: Exception) -> int:
    from bertloop.core.workspace import StepNotRun
    from bertloop.pipeline.steps import BatchRejected, NoBatchWaiting
    from intake.datasets import GoldenSetInvalid
    from rollout.controller import NothingToRollOut

    if isinstance(error, BatchRejected):
        print(f"rejected: {error}", file=sys.stderr)
        return EXIT_REJECTED
    if isinstance(
        error,
        StepNotRun | NoBatchWaiting | GoldenSetInvalid | FileNotFoundError | ValueError | NothingToRollOut,
    ):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    raise error


def _parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator or not key.strip():
            raise SystemExit(f"error: --set expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({error})") from None
    return overrides


if __name__ == "__main__":
    sys.exit(main())
