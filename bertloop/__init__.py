"""bertloop: keeps BERT-family text classifiers fresh in production.

The package holds what every stage shares: the typed configuration, the
names of aliases, metrics and queues, the workspace layout, the step functions
that the Airflow DAG and the command line both call, and the command line.
"""

__version__ = "0.1.0"
