"""Scoring models on the golden set and deciding whether a candidate is blessed."""
