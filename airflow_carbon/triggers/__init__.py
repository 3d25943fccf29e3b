"""Airflow layer: triggers, run by the triggerer while a task is deferred."""
