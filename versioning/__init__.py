"""Versioning accepted data with DVC in a data repository the platform manages."""
