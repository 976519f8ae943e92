"""Prefect flows: orchestration only (what runs, in which order, where)."""
