"""bertloop: keeps BERT-family text classifiers fresh in production.

``bertloop.core`` holds what every stage shares (configuration, constants,
workspace layout, hashing, the stores); ``bertloop.pipeline`` composes the
stages into steps, Airflow task bodies and the command line. See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
