"""The MLflow model registry: logging, registering, lineage tags and aliases."""
