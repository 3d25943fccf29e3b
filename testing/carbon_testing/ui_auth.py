"""The auth manager of the UI tests: Airflow's SimpleAuthManager, plus DAG-level read scopes.

SimpleAuthManager grants by role only; real deployments scope users to DAGs (FAB permissions,
Keycloak, multi-team). ``CARBON_TEST_DAG_SCOPE="alice=dag_a,dag_b;bob=dag_c"`` limits those users to
those DAGs through the auth manager's own hooks (is_authorized_dag / filter_authorized_dag_ids), the
ones Airflow's API and the carbon UI call. Everything else is SimpleAuthManager's.
"""

from __future__ import annotations

import os

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


def _scopes() -> dict[str, set[str]]:
    scopes = {}
    for entry in filter(None, os.environ.get("CARBON_TEST_DAG_SCOPE", "").split(";")):
        user, _, dags = entry.partition("=")
        scopes[user.strip()] = {d.strip() for d in dags.split(",") if d.strip()}
    return scopes


class DagScopedSimpleAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        scope = _scopes().get(user.get_name())
        if scope is not None and (details is None or details.id not in scope):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def filter_authorized_dag_ids(self, *, dag_ids, user, method="GET", team_name=None) -> set[str]:
        allowed = super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        scope = _scopes().get(user.get_name())
        return allowed if scope is None else allowed & scope
