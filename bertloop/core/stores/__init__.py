"""The platform's own databases, one owner module per store.

- ``predictions``: the prediction log and feedback (written by the gateway, read by the canary and drift);
- ``ledger``: the append-only promotion ledger;
- ``drift_history``: one row per drift check, the drift timeline.

Each opens its tables through :func:`engines.open_tables`: one engine per URL per process, tables
created once, SQLite files created 0600.
"""
