"""Prefect tasks: thin, retried wrappers around the science layer and the lakehouse."""
