"""Intake of labelled batches: reading, validation with Great Expectations, quarantine."""
