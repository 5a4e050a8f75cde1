# One image for every bertloop service: Airflow components, Celery workers, the MLflow server, the gateway.
# Build the GPU worker's image with a CUDA build of torch:
#   docker build --build-arg TORCH_VARIANT=cu128 -t bertloop:gpu .
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
# "cpu" for the CPU image; a CUDA variant (cu126, cu128, ...) for the GPU worker.
ARG TORCH_VARIANT=cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends git curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 --home-dir /opt/airflow bertloop

# torch first, from the index of the wanted build, so nothing later resolves a different one.
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /opt/bertloop/src
COPY pyproject.toml README.md ./
COPY bertloop ./bertloop
COPY intake ./intake
COPY versioning ./versioning
COPY modeling ./modeling
COPY training ./training
COPY evaluation ./evaluation
COPY registry ./registry
COPY serving ./serving
COPY rollout ./rollout
COPY drift ./drift
RUN pip install ".[distributed]"
COPY dags /opt/airflow/dags
COPY plugins /opt/airflow/plugins
COPY docker/entrypoint.sh /usr/local/bin/bertloop-entrypoint

RUN mkdir -p /opt/bertloop/workspace /opt/bertloop/config /mlartifacts \
    && chown -R bertloop /opt/bertloop /opt/airflow /mlartifacts
USER bertloop
ENTRYPOINT ["tini", "--", "bertloop-entrypoint"]
