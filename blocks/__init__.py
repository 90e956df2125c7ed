"""Prefect Blocks holding credentials and ids: each wraps the core's config model as it is."""
