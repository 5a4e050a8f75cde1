"""Canary rollout: the step decision, the controller that ramps traffic, and the promotion ledger."""
