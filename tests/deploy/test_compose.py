"""docker-compose.yml checked against the project: Docker cannot run here, so the file is parsed."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from bertloop.core import constants, secrets
from bertloop.core.config import ConfigError, OrchestrationConfig, RegistryConfig, load_config
from bertloop.pipeline import airflow_api
from serving.access import Access, build_access
from tests.conftest import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = {
    line.split("=", 1)[0]
    for line in (REPO_ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
}
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]
LONG_RUNNING = [name for name in SERVICES if name != "airflow-init"]
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|API_KEY", re.IGNORECASE)
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::([?-])([^}]*))?\}")
NOT_SETTINGS = {  # BERTLOOP_* names that are no setting: the file, the secrets, the tasks' REST login
    name.removeprefix("BERTLOOP_").lower()
    for name in ("BERTLOOP_CONFIG", secrets.ENV_API_KEYS, secrets.ENV_GATEWAY_SECRET, *airflow_api.ENV_NAMES)
}


def _environment(service: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def _interpolate(value: str, variables: Mapping[str, str]) -> str:
    """What compose makes of a value: ${X}, ${X:-default}, and ${X:?message}, which refuses an unset X."""

    def substitute(match: re.Match[str]) -> str:
        name, kind, text = match.groups()
        if variables.get(name):
            return variables[name]
        if kind == "?":
            raise ValueError(f"compose refuses to start: {text}")
        return text if kind == "-" else ""

    return VARIABLE.sub(substitute, value)


def _worker_queues(service: dict) -> list[str]:
    command = service["command"]
    return command[command.index("--queues") + 1].split(",")


def test_the_whole_stack_is_there() -> None:
    expected = {
        "postgres", "redis", "mlflow", "airflow-init", "airflow-api-server", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker-cpu", "airflow-worker-gpu", "gateway",
    }  # fmt: skip
    assert expected <= set(SERVICES)


def test_gpu_worker_serves_the_train_queue_with_an_nvidia_reservation() -> None:
    gpu = SERVICES["airflow-worker-gpu"]
    assert _worker_queues(gpu) == [OrchestrationConfig().train_queue] == [constants.DEFAULT_TRAIN_QUEUE]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["TORCH_VARIANT"].startswith("${TORCH_CUDA_VARIANT")
    assert _worker_queues(SERVICES["airflow-worker-cpu"]) == ["default"]
    assert "deploy" not in SERVICES["airflow-worker-cpu"]


def test_airflow_runs_celery_on_postgres_and_redis_with_the_projects_queue_and_pool() -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(SERVICES[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["BERTLOOP_ORCHESTRATION__TRAIN_QUEUE"] == constants.DEFAULT_TRAIN_QUEUE
        assert env["BERTLOOP_ORCHESTRATION__TRAIN_POOL"] == constants.DEFAULT_TRAIN_POOL
        assert env["BERTLOOP_REGISTRY__TRACKING_URI"] == "http://mlflow:5000"
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "bertloop.pipeline.orchestration.worker_hostname"
    mlflow_command = SERVICES["mlflow"]["command"]
    store = mlflow_command[mlflow_command.index("--backend-store-uri") + 1]
    assert store.startswith("postgresql+psycopg2://") and "--artifacts-destination" in mlflow_command


def test_environment_names_are_real_settings() -> None:
    """Every BERTLOOP_* setting in the file parses into the project's configuration model."""
    from bertloop.core.config import PlatformConfig, _from_environment

    for name in ("airflow-scheduler", "gateway"):
        env = _environment(SERVICES[name])
        settings = {key: value for key, value in env.items() if key.startswith("BERTLOOP_")}
        # A variable that names a section (BERTLOOP_<SECTION>__<KEY>, or BERTLOOP_WORKSPACE) must be a real
        # one: _from_environment skips unknown sections silently, so check the names before parsing.
        sections = {key.removeprefix("BERTLOOP_").split("__")[0].lower() for key in settings}
        assert sections - NOT_SETTINGS <= set(PlatformConfig.model_fields), (name, sections)
        nested = _from_environment({k: v for k, v in settings.items() if "${" not in v})
        assert {"registry", "workspace"} <= set(nested)
        RegistryConfig.model_validate(nested["registry"])
    OrchestrationConfig.model_validate(
        _from_environment(_environment(SERVICES["airflow-scheduler"]))["orchestration"]
    )


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_health_checks_and_restart_policies(name: str) -> None:
    service = SERVICES[name]
    assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert service.get("restart") in {"unless-stopped", "always"}, f"{name} does not restart"


def test_authentication_is_on_for_airflow_and_mlflow() -> None:
    assert SERVICES["mlflow"]["command"][0] == "mlflow-server"  # the entrypoint adds --app-name basic-auth
    entrypoint = (REPO_ROOT / "docker" / "entrypoint.sh").read_text()
    assert "mlflow server --app-name basic-auth" in entrypoint
    api_env = _environment(SERVICES["airflow-api-server"])
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in api_env
    assert api_env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET")


def test_the_gateway_serves_on_every_interface_of_its_container_published_on_8000() -> None:
    gateway = SERVICES["gateway"]
    command = gateway["command"]
    assert command[:4] == ["bertloop", "--config", "/opt/bertloop/config/bertloop.yaml", "serve"]
    options = dict(zip(command[4::2], command[5::2], strict=True))
    assert options == {"--host": "0.0.0.0", "--port": "8000"}
    assert gateway["ports"] == ["8000:8000"]
    depends = {name: needs["condition"] for name, needs in gateway["depends_on"].items()}
    assert depends == {"postgres": "service_healthy", "mlflow": "service_healthy"}
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["stop_grace_period"]  # room for serving.graceful_shutdown_seconds


def _start_gateway(tmp_path: Path, variables: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Access:
    """What the gateway's container does at start, up to its keys: its environment as compose makes it
    from ``variables`` (.env), a mounted configuration file that turns auth off, and ``build_access``."""
    config_file = tmp_path / "bertloop.yaml"
    settings = {"data": {"labels": ["a", "b"], "golden_set": "golden.csv"}, "serving": {"auth": "off"}}
    config_file.write_text(yaml.safe_dump(settings))
    for key, value in _environment(SERVICES["gateway"]).items():
        monkeypatch.setenv(key, _interpolate(value, variables))
    monkeypatch.setenv("BERTLOOP_WORKSPACE", str(tmp_path / "workspace"))
    config = load_config(config_file)
    assert config.serving.auth == "required", "the environment must win over a mounted file's auth: off"
    assert config.serving.trusted_hosts == ["localhost", "gw.example.org"]
    assert secrets.gateway_secret(config) == variables["BERTLOOP_GATEWAY_SECRET"].encode()
    return build_access(config, "0.0.0.0")


def test_the_gateway_cannot_be_started_without_api_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _environment(SERVICES["gateway"])
    assert env["BERTLOOP_SERVING__AUTH"] == "required"  # a literal: no variable of .env turns it off
    assert not any("BERTLOOP_SERVING__AUTH" in value for value in env.values())
    for secret in ("BERTLOOP_API_KEYS", "BERTLOOP_GATEWAY_SECRET"):
        assert env[secret].startswith(f"${{{secret}:?"), f"compose must refuse to start without {secret}"
    keys = "k" * 32 + " predict,feedback app;" + "m" * 32 + " metrics prometheus"
    variables = {"POSTGRES_USER": "bertloop", "POSTGRES_PASSWORD": "pg", "MLFLOW_TRACKING_PASSWORD": "ml",
                 "BERTLOOP_GATEWAY_SECRET": "s" * 64, "GATEWAY_TRUSTED_HOSTS": "[localhost, gw.example.org]",
                 "BERTLOOP_API_KEYS": keys}  # fmt: skip
    access = _start_gateway(tmp_path, variables, monkeypatch)
    assert access.require_keys and len(access.keys) == 2
    with pytest.raises(ValueError, match="compose refuses to start"):
        _start_gateway(tmp_path, {**variables, "BERTLOOP_API_KEYS": ""}, monkeypatch)
    with pytest.raises(ConfigError, match="requires API keys"):  # set, but to no key: the gateway refuses
        _start_gateway(tmp_path, {**variables, "BERTLOOP_API_KEYS": " ; "}, monkeypatch)


def test_the_gateway_logs_to_postgres_where_the_canary_and_drift_tasks_read() -> None:
    gateway, scheduler = _environment(SERVICES["gateway"]), _environment(SERVICES["airflow-scheduler"])
    for setting in ("BERTLOOP_SERVING__PREDICTION_LOG_URL", "BERTLOOP_CANARY__LEDGER_URL"):
        assert gateway[setting] == scheduler[setting], setting
        assert gateway[setting].startswith("postgresql+psycopg2://") and gateway[setting].endswith(
            "/bertloop"
        )
    assert "bertloop" in (REPO_ROOT / "docker" / "postgres-init.sh").read_text().split("for database in")[1]
    assert gateway["BERTLOOP_REGISTRY__TRACKING_URI"] == scheduler["BERTLOOP_REGISTRY__TRACKING_URI"]


def test_tasks_log_in_to_the_airflow_api_as_the_configured_admin() -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(SERVICES[name])
        assert env[airflow_api.ENV_URL] == "http://airflow-api-server:8080"
        user = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].rsplit(":", 1)[0]  # user:role
        assert env[airflow_api.ENV_USERNAME] == user == "${AIRFLOW_ADMIN_USERNAME:-admin}"
        assert env[airflow_api.ENV_PASSWORD].startswith("${AIRFLOW_ADMIN_PASSWORD")


def test_no_secret_is_written_in_the_file() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for name, service in SERVICES.items():
        for key, value in _environment(service).items():
            if SECRET_WORDS.search(key) and not key.endswith("_FILE"):  # a path to a secret is not one
                assert value.startswith("${"), f"{name}.{key} holds a literal secret"
    for url in re.findall(r"(?:postgresql\S*|redis)://[^\s\"]+", text):
        credentials = url.split("://", 1)[1].split("@")[0]
        assert "@" not in url or "${" in credentials, f"literal credentials in {url}"


def test_every_variable_is_documented_in_env_example() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))  # $${X} is the container's own
    assert used <= ENV_EXAMPLE, f"missing from .env.example: {sorted(used - ENV_EXAMPLE)}"
    example_values = dict(
        line.split("=", 1) for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    for key, value in example_values.items():
        if SECRET_WORDS.search(key):
            assert value == "", f".env.example ships a value for the secret {key}"


def test_the_image_holds_every_package_of_the_wheel() -> None:
    """`pip install .` in the image finds only the packages copied in: a missing one fails at import."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"


def test_dockerfile_installs_torch_from_the_wanted_build_first() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    torch_line = dockerfile.index('pip install "torch==${TORCH_VERSION}"')
    assert torch_line < dockerfile.index('pip install ".[distributed]"')
    assert "ARG TORCH_VARIANT=cpu" in dockerfile
    assert Path(REPO_ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111
