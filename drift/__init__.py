"""Drift detection on live predictions, its reports, and the storm control around retraining."""
