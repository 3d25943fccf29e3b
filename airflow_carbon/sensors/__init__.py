"""Airflow layer: sensors (a grid's live carbon intensity below a threshold)."""
