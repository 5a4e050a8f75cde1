#!/usr/bin/env bash
# Runs the service command given by docker-compose; prepares what each kind of service needs.
set -euo pipefail
case "${1:-}" in
  mlflow-server)
    shift
    # The auth app reads its own store location from an ini file; write it from the environment.
    cat > /tmp/mlflow-auth.ini <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_TRACKING_USERNAME}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
    export MLFLOW_AUTH_CONFIG_PATH=/tmp/mlflow-auth.ini
    export MLFLOW_AUTH_ADMIN_PASSWORD="${MLFLOW_TRACKING_PASSWORD}"
    exec mlflow server --app-name basic-auth "$@"
    ;;
  airflow-api-server)
    shift
    # Simple auth manager: the admin's password comes from the environment, never from the image.
    umask 077
    printf '{"%s": "%s"}' "${AIRFLOW_ADMIN_USERNAME}" "${AIRFLOW_ADMIN_PASSWORD}" \
      > "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
    exec airflow api-server "$@"
    ;;
  airflow-init)
    airflow db migrate
    airflow pools set "${BERTLOOP_ORCHESTRATION__TRAIN_POOL:-gpu_training}" "${BERTLOOP_TRAIN_POOL_SLOTS:-1}" \
      "Slots for fine-tuning on GPU workers"
    ;;
  *)
    exec "$@"
    ;;
esac
