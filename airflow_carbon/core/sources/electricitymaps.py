"""Electricity Maps API v3: carbon intensity by zone, latest, history (past 24 h) and forecast, hourly.

The token (a Connection's password, or an environment variable) goes in the ``auth-token`` header and
nowhere else. ``emissionFactorType`` is ``lifecycle`` (the default, as the bundled table's
lifecycle figures) or ``direct``. The figures are averages of the consumption mix (flow-traced); each
says whether Electricity Maps estimated it (``isEstimated``), which the interval keeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.sources.http import SourceError, get_json, timeout

SOURCE = "electricitymaps"
PUBLIC_URL = "https://api.electricitymap.org"
HOUR_S = 3600.0
SIGNAL = "average"
EMISSION_FACTORS = ("lifecycle", "direct")


class ElectricityMapsClient:
    """Client of Electricity Maps v3 at ``base_url`` (the public one when None), with ``token``.
    ``credentials`` names where the token came from (for a refused token's message)."""

    def __init__(self, token: str, base_url: str | None = None, *, emission_factor: str = "lifecycle",
                 credentials: str | None = None, client: httpx.Client | None = None,
                 connect_timeout_s: float = 3.0, read_timeout_s: float = 5.0) -> None:
        if emission_factor not in EMISSION_FACTORS:
            raise ValueError(f"emission_factor={emission_factor!r} is invalid; expected one of {', '.join(EMISSION_FACTORS)}")
        if not token:
            raise ValueError("an Electricity Maps token is needed (the Connection's password); none was given")
        self.base_url = (base_url or PUBLIC_URL).rstrip("/")
        self.emission_factor = emission_factor
        self.credentials = credentials
        self._token = token
        self._client = client or httpx.Client(timeout=timeout(connect_timeout_s, read_timeout_s))

    def __repr__(self) -> str:  # never the token
        return f"ElectricityMapsClient(base_url={self.base_url!r}, emission_factor={self.emission_factor!r})"

    def close(self) -> None:
        self._client.close()

    def latest(self, zone: str) -> list[IntensityInterval]:
        """The latest hour's figure (one interval)."""
        body = self._get("/v3/carbon-intensity/latest", zone)
        return [self._interval(body)]

    def history(self, zone: str) -> list[IntensityInterval]:
        """The past 24 hours, hourly."""
        return [self._interval(row) for row in self._rows(self._get("/v3/carbon-intensity/history", zone), "history")]

    def forecast(self, zone: str) -> list[IntensityInterval]:
        """The coming hours, hourly: every interval ``estimated``."""
        rows = self._rows(self._get("/v3/carbon-intensity/forecast", zone), "forecast")
        return [self._interval(row, forecast=True) for row in rows]

    # -- internals ---------------------------------------------------------------------------------
    def _get(self, path: str, zone: str) -> Any:
        params = {"zone": zone, "emissionFactorType": self.emission_factor}
        return get_json(self._client, self.base_url + path, source=SOURCE, params=params,
                        headers={"auth-token": self._token}, credentials=self.credentials)

    @staticmethod
    def _rows(body: Any, key: str) -> list[Any]:
        rows = body.get(key) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows:
            raise SourceError(SOURCE, f"no {key} in the response")
        return rows

    def _interval(self, row: Any, *, forecast: bool = False) -> IntensityInterval:
        try:
            g = row["carbonIntensity"]
            if not isinstance(g, (int, float)) or isinstance(g, bool):
                raise ValueError(f"carbonIntensity {g!r} is not a number")
            start = datetime.fromisoformat(row["datetime"].replace("Z", "+00:00")).timestamp()
            estimated = forecast or bool(row.get("isEstimated"))
            return IntensityInterval(start, start + HOUR_S, float(g), f"{SOURCE}:{row.get('zone', '')}".rstrip(":"), estimated)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(SOURCE, f"unexpected response shape ({type(exc).__name__}: {exc})") from None
