"""Airflow layer: what differs between the Airflow versions this package supports, in one place.

Supported: Apache Airflow 3.3 and later 3.x releases (``apache-airflow>=3.3,<4`` in pyproject.toml).
3.3 is the honest minimum: every try's records are kept in the task state store
(``context["task_state_store"]`` with ``NEVER_EXPIRE`` retention), which Airflow 3.3 introduced, so
that a retry or a killed try never loses the earlier tries' energy. Within 3.3+ nothing differs today;
an import that moves in a later 3.x release goes here, behind an ``AIRFLOW_V_3_x_PLUS`` flag, so the rest
of the package imports it from one place.
"""

from __future__ import annotations

from importlib.metadata import version


def _version_tuple(text: str) -> tuple[int, int, int]:
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in text.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


AIRFLOW_VERSION = _version_tuple(version("apache-airflow-core"))
"""The installed Airflow's (major, minor, micro)."""

MIN_AIRFLOW_VERSION = (3, 3, 0)
"""The oldest Airflow this package supports: the task state store is new in 3.3."""

AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)

if AIRFLOW_V_3_3_PLUS:
    from airflow.sdk import NEVER_EXPIRE
else:  # pragma: no cover - refused by pyproject.toml; a clear error for a forced install
    raise ImportError(
        f"airflow-carbon needs Apache Airflow >= {'.'.join(map(str, MIN_AIRFLOW_VERSION))} (the task state store "
        f"that keeps every try's records); this is {'.'.join(map(str, AIRFLOW_VERSION))}"
    )

__all__ = ["AIRFLOW_VERSION", "AIRFLOW_V_3_3_PLUS", "MIN_AIRFLOW_VERSION", "NEVER_EXPIRE"]
