"""Airflow layer: the "Carbon emissions" pages and their JSON/CSV endpoints, served by Airflow's
api-server under ``/carbon`` (a FastAPI app registered by :mod:`airflow_carbon.plugins.carbon`)."""
