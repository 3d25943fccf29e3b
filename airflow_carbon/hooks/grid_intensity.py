"""Airflow layer: the live grid-intensity sources' Connections, turned into the core's :class:`LiveSpec`.

Three Connection types, registered in the provider info so that Airflow's Connection form shows their
fields: ``electricitymaps`` (the token is the password; extra ``{"emission_factor": "direct"}`` for
direct figures), ``watttime`` (login and password) and ``uk_carbon_intensity`` (no credentials). The
API's base URL is the Connection's host, a full URL (the public API when empty). The hooks are thin:
the clients are the core's (:mod:`airflow_carbon.core.sources`), usable without Airflow. Secrets are
masked in task logs as soon as they are read and never leave the spec (whose repr leaves them out).
Connections are looked up when a try starts, never when a DAG file is parsed.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from airflow_carbon.core.live import SOURCES, LiveSpec

__all__ = ["ElectricityMapsHook", "UKCarbonIntensityHook", "WattTimeHook", "live_spec"]


class GridIntensityHook(BaseHook):
    """A live grid-intensity source through an Airflow Connection (``intensity_conn_id``)."""

    conn_name_attr = "intensity_conn_id"
    source: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]

    def __init__(self, intensity_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.intensity_conn_id = intensity_conn_id or self.default_conn_name

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The Connection form, as the provider info declares it."""
        from airflow_carbon.provider import INTENSITY_CONNECTIONS

        behaviour = INTENSITY_CONNECTIONS[cls.conn_type]["ui-field-behaviour"]
        return {"hidden_fields": behaviour["hidden-fields"], "relabeling": behaviour["relabeling"],
                "placeholders": behaviour["placeholders"]}

    def get_spec(self) -> LiveSpec:
        """The source's settings from the Connection (AirflowNotFoundException where it does not exist)."""
        return spec_from_connection(self.get_connection(self.intensity_conn_id), self.intensity_conn_id, self.source)

    def get_conn(self) -> Any:
        """The core's client of the source (close it when done)."""
        return self.get_spec().client()

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: one real request (WattTime: a login; the others: a current figure)."""
        from airflow_carbon.core.sources.http import SourceError

        client = self.get_conn()
        try:
            if self.source == "watttime":
                client._bearer()
                return True, f"logged in to WattTime at {client.base_url}"
            if self.source == "electricitymaps":
                zone = self.get_connection(self.intensity_conn_id).extra_dejson.get("test_zone", "DE")
                (latest,) = client.latest(zone)
                return True, f"{zone}: {latest.g_per_kwh:g} gCO2e/kWh from Electricity Maps at {client.base_url}"
            (current,) = client.current()[:1]
            return True, f"Great Britain: {current.g_per_kwh:g} gCO2e/kWh from {client.base_url}"
        except (SourceError, ValueError) as exc:
            return False, str(exc)
        finally:
            client.close()


class ElectricityMapsHook(GridIntensityHook):
    """Electricity Maps v3 (Connection type ``electricitymaps``; its password is the API token)."""

    source = "electricitymaps"
    default_conn_name = SOURCES[source].default_conn_id
    conn_type = "electricitymaps"
    hook_name = "Electricity Maps"


class WattTimeHook(GridIntensityHook):
    """WattTime v3 (Connection type ``watttime``; its login and password log in)."""

    source = "watttime"
    default_conn_name = SOURCES[source].default_conn_id
    conn_type = "watttime"
    hook_name = "WattTime"


class UKCarbonIntensityHook(GridIntensityHook):
    """The GB Carbon Intensity API (Connection type ``uk_carbon_intensity``; no credentials)."""

    source = "uk_carbon_intensity"
    default_conn_name = SOURCES[source].default_conn_id
    conn_type = "uk_carbon_intensity"
    hook_name = "GB Carbon Intensity"


HOOKS: dict[str, type[GridIntensityHook]] = {h.conn_type: h for h in (ElectricityMapsHook, WattTimeHook, UKCarbonIntensityHook)}
"""The hooks by Connection type."""


def _base_url(conn: Any) -> str | None:
    host = (conn.host or "").strip()
    if not host:
        return None
    url = host if "://" in host else f"{conn.schema or 'https'}://{host}"
    return f"{url}:{conn.port}" if conn.port and url.count(":") < 2 else url


def spec_from_connection(conn: Any, conn_id: str, source: str | None = None) -> LiveSpec:
    """The :class:`LiveSpec` of a Connection whose type is a live source's (``source``: the type expected;
    None: any of them). ValueError naming the Connection and its type otherwise."""
    conn_type = (conn.conn_type or "").replace("-", "_")
    if conn_type not in HOOKS or (source is not None and conn_type != source):
        expected = source or " or ".join(HOOKS)
        raise ValueError(f"Connection {conn_id!r} has type {conn.conn_type!r}; a live grid-intensity source needs type {expected}")
    from airflow.sdk.log import mask_secret

    for secret in (conn.password,):
        if secret:
            mask_secret(secret)
    try:
        extra = json.loads(conn.extra) if conn.extra else {}
    except ValueError:
        raise ValueError(f"Connection {conn_id!r}: its extra is not a JSON object") from None
    credentials = f"Connection {conn_id!r}"
    if conn_type == "electricitymaps":
        return LiveSpec("electricitymaps", _base_url(conn), token=conn.password or None,
                        emission_factor=extra.get("emission_factor"), conn_id=conn_id, credentials=credentials)
    if conn_type == "watttime":
        return LiveSpec("watttime", _base_url(conn), username=conn.login or None, password=conn.password or None,
                        conn_id=conn_id, credentials=credentials)
    return LiveSpec("uk_carbon_intensity", _base_url(conn), conn_id=conn_id, credentials=credentials)


def live_spec(conn_id: str) -> LiveSpec:
    """The :class:`LiveSpec` of the Connection ``conn_id``, whichever of the three types it has."""
    return spec_from_connection(BaseHook.get_connection(conn_id), conn_id)
