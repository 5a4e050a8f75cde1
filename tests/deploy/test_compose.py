"""docker-compose.yml checked against the project: Docker cannot run here, so the file is parsed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bertloop.core import constants
from bertloop.core.config import OrchestrationConfig, RegistryConfig
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
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN", re.IGNORECASE)


def _environment(service: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def _worker_queues(service: dict) -> list[str]:
    command = service["command"]
    return command[command.index("--queues") + 1].split(",")


def test_the_whole_stack_is_there() -> None:
    expected = {
        "postgres", "redis", "mlflow", "airflow-init", "airflow-api-server", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker-cpu", "airflow-worker-gpu",
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

    env = _environment(SERVICES["airflow-scheduler"])
    settings = {key: value for key, value in env.items() if key.startswith("BERTLOOP_")}
    # A variable that names a section (BERTLOOP_<SECTION>__<KEY>, or BERTLOOP_WORKSPACE) must be a real one:
    # _from_environment skips unknown sections silently, so check the names before parsing.
    sections = {key.removeprefix("BERTLOOP_").split("__")[0].lower() for key in settings}
    not_settings = {"config"}  # BERTLOOP_CONFIG names the file
    assert sections - not_settings <= set(PlatformConfig.model_fields), sections
    nested = _from_environment(settings)
    assert {"registry", "orchestration", "workspace"} <= set(nested)
    OrchestrationConfig.model_validate(nested["orchestration"])
    RegistryConfig.model_validate(nested["registry"])


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


def test_dockerfile_installs_torch_from_the_wanted_build_first() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    torch_line = dockerfile.index('pip install "torch==${TORCH_VERSION}"')
    assert torch_line < dockerfile.index('pip install ".[distributed]"')
    assert "ARG TORCH_VARIANT=cpu" in dockerfile
    assert Path(REPO_ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111
