"""Airflow layer: the plugin (``airflow.plugins`` entry point): the automatic-tracking listener and the
extra link. Every task process imports plugins, so this module imports only what it registers."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_carbon.links.carbon import CarbonEmissionsLink
from airflow_carbon.listeners import carbon as carbon_listener


class CarbonPlugin(AirflowPlugin):
    """Registers airflow-carbon's listener and operator extra link with Airflow."""

    name = "carbon"
    listeners = [carbon_listener]
    operator_extra_links = [CarbonEmissionsLink()]
