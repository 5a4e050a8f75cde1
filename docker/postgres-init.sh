#!/usr/bin/env bash
# Creates one database per service on the shared PostgreSQL: Airflow, MLflow, MLflow's auth store, and
# bertloop's own (the gateway's prediction log and feedback, the promotion ledger, the drift history).
set -euo pipefail
for database in airflow mlflow mlflow_auth bertloop; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE ${database} OWNER \"${POSTGRES_USER}\";"
done
