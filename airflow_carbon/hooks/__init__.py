"""Airflow layer: hooks, one per external service (the Hugging Face Hub)."""
