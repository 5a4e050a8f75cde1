"""Helpers for the demo, the tests and the benchmarks (not shipped with the product)."""
