"""Dagster wiring only: assets, resources and schedules built on the Dagster-free packages."""
