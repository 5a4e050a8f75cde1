"""The top layer: the step functions, the Airflow task bodies and the command line.

It is the only code that composes several stages; no stage imports it.
"""
