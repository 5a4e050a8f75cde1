#!/usr/bin/env bash
# Creates one database per service on the shared PostgreSQL: Airflow, MLflow, MLflow's auth store.
set -euo pipefail
for database in airflow mlflow mlflow_auth; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE ${database} OWNER \"${POSTGRES_USER}\";"
done
