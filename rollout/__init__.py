"""Canary rollout, the logic behind the `canary` DAG: step decision, controller, promotion ledger."""
