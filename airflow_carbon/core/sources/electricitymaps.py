"""Electricity Maps API v3: carbon intensity by zone, latest, history (past 24 h) and forecast, hourly.

The token (a Connection's password, or an environment variable) goes in the ``auth-token`` header and
nowhere else. ``emissionFactorType`` is ``lifecycle`` (the default, as the bundled table's
lifecycle figures) or ``direct``. The figures are averages of the consumption mix (flow-traced); each
says whether Electricity Maps estimated it (``isEstimated``), which the interval keeps.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import httpx

from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.sources.http import SHAPE_ERRORS, SourceClient, SourceError, aget_json, get_json, number, unix_s

SOURCE = "electricitymaps"
PUBLIC_URL = "https://api.electricitymap.org"
HOUR_S = 3600.0
SIGNAL = "average"
EMISSION_FACTORS = ("lifecycle", "direct")


class ElectricityMapsClient(SourceClient):
    """Client of Electricity Maps v3 at ``base_url`` (the public one when None), with ``token``.
    ``credentials`` names where the token came from (for a refused token's message); ``client`` and the
    timeouts as :class:`~airflow_carbon.core.sources.http.SourceClient`'s."""

    source = SOURCE

    def __init__(self, token: str, base_url: str | None = None, *, emission_factor: str = "lifecycle",
                 credentials: str | None = None, **kwargs: Any) -> None:
        if emission_factor not in EMISSION_FACTORS:
            raise ValueError(f"emission_factor={emission_factor!r} is invalid; expected one of {', '.join(EMISSION_FACTORS)}")
        if not token:
            raise ValueError("an Electricity Maps token is needed (the Connection's password); none was given")
        super().__init__(base_url, PUBLIC_URL, **kwargs)
        self.emission_factor = emission_factor
        self.credentials = credentials
        self._token = token

    def __repr__(self) -> str:  # never the token
        return f"ElectricityMapsClient(base_url={self.base_url!r}, emission_factor={self.emission_factor!r})"

    def latest(self, zone: str) -> list[IntensityInterval]:
        """The latest hour's figure (one interval)."""
        body = self._get("/v3/carbon-intensity/latest", zone)
        return [self._interval(body)]

    async def alatest(self, client: httpx.AsyncClient, zone: str) -> list[IntensityInterval]:
        """:meth:`latest` on an event loop, through ``client``."""
        return [self._interval(await aget_json(client, self.base_url + "/v3/carbon-intensity/latest", **self._request(zone)))]

    def history(self, zone: str) -> list[IntensityInterval]:
        """The past 24 hours, hourly."""
        return [self._interval(row) for row in self._rows(self._get("/v3/carbon-intensity/history", zone), "history")]

    def forecast(self, zone: str) -> list[IntensityInterval]:
        """The coming hours: every interval ``estimated``, each point lasting until the next one (hourly,
        or the finer granularity an account gets); the last one as long as the one before it."""
        return self._forecast(self._get("/v3/carbon-intensity/forecast", zone))

    async def aforecast(self, client: httpx.AsyncClient, zone: str) -> list[IntensityInterval]:
        """:meth:`forecast` on an event loop, through ``client``."""
        return self._forecast(await aget_json(client, self.base_url + "/v3/carbon-intensity/forecast", **self._request(zone)))

    # -- internals ---------------------------------------------------------------------------------
    def _request(self, zone: str) -> dict[str, Any]:
        return {"source": SOURCE, "params": {"zone": zone, "emissionFactorType": self.emission_factor},
                "headers": {"auth-token": self._token}, "credentials": self.credentials}

    def _get(self, path: str, zone: str) -> Any:
        return get_json(self._client, self.base_url + path, **self._request(zone))

    @staticmethod
    def _rows(body: Any, key: str) -> list[Any]:
        rows = body.get(key) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows:
            raise SourceError(SOURCE, f"no {key} in the response")
        return rows

    def _forecast(self, body: Any) -> list[IntensityInterval]:
        """The forecast's points as intervals, each lasting until the next point (the last as long as the one
        before it; a lone point an hour): hourly, or the finer granularity an account gets."""
        points = sorted((self._interval(row, forecast=True) for row in self._rows(body, "forecast")), key=lambda i: i.start_s)
        starts = sorted({i.start_s for i in points})
        if len(starts) < 2:
            return points
        ends = dict(pairwise(starts)) | {starts[-1]: 2 * starts[-1] - starts[-2]}
        return [replace(i, end_s=ends[i.start_s]) for i in points]

    def _interval(self, row: Any, *, forecast: bool = False) -> IntensityInterval:
        try:
            g = number(row["carbonIntensity"], "carbonIntensity")
            start = unix_s(row["datetime"])
            estimated = forecast or bool(row.get("isEstimated"))
            return IntensityInterval(start, start + HOUR_S, g, f"{SOURCE}:{row.get('zone', '')}".rstrip(":"), estimated)
        except SHAPE_ERRORS as exc:
            raise self.shape_error(exc) from None
