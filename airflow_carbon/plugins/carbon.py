"""Airflow layer: the plugin (``airflow.plugins`` entry point): the automatic-tracking listener, the
extra link, and the "Carbon emissions" UI (a FastAPI app at ``/carbon`` shown inside Airflow's UI
through external views). Every task process imports plugins, so this module imports only what it
registers; the FastAPI app is built by the api-server on its first request."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from airflow_carbon.links.carbon import CarbonEmissionsLink
from airflow_carbon.listeners import carbon as carbon_listener
from airflow_carbon.listeners import run_summaries


class LazyCarbonApp:
    """An ASGI app that builds :func:`airflow_carbon.ui.app.create_app` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_carbon.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


# Airflow's UI puts these pages in an iframe; hrefs are relative to its base URL and {DAG_ID}, {RUN_ID},
# {TASK_ID}, {MAP_INDEX} are filled in by the UI.
EXTERNAL_VIEWS = [
    {"name": "Carbon emissions", "href": "carbon/", "destination": "nav", "url_route": "carbon", "category": "browse"},
    {"name": "Carbon", "href": "carbon/dags/{DAG_ID}", "destination": "dag", "url_route": "carbon-dag"},
    {"name": "Carbon", "href": "carbon/dags/{DAG_ID}/runs/{RUN_ID}", "destination": "dag_run", "url_route": "carbon-run"},
    {"name": "Carbon", "href": "carbon/dags/{DAG_ID}/runs/{RUN_ID}/tasks/{TASK_ID}?map_index={MAP_INDEX}",
     "destination": "task_instance", "url_route": "carbon-task"},
]


class CarbonPlugin(AirflowPlugin):
    """Registers airflow-carbon's listener, operator extra link and UI with Airflow."""

    name = "carbon"
    listeners: ClassVar[list[Any]] = [carbon_listener, run_summaries]
    global_operator_extra_links: ClassVar[list[Any]] = [CarbonEmissionsLink()]
    operator_extra_links: ClassVar[list[Any]] = [CarbonEmissionsLink()]  # DAGs serialized by 0.3.x name it
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": LazyCarbonApp(), "url_prefix": "/carbon", "name": "Carbon emissions"}]
    external_views = EXTERNAL_VIEWS
