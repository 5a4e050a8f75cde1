"""The serving gateway: champion and canary by MLflow alias, micro-batching, a durable prediction log."""
