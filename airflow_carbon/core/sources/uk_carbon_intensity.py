"""The GB Carbon Intensity API (NESO, api.carbonintensity.org.uk): no key, half-hourly, operational figures.

Its figures count combustion at the power stations only (operational, not lifecycle), and are an
average of the generation mix: every interval says so. National: ``/intensity`` (the current half hour)
and ``/intensity/{from}/fw24h`` (24 h forward); regional: ``/regional/regionid/{id}`` and
``/regional/postcode/{outward postcode}``, each also with ``/intensity/{from}/fw24h/...`` forms. The
``actual`` figure is used where there is one, else the ``forecast`` (``estimated``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.sources.http import SHAPE_ERRORS, SourceClient, SourceError, aget_json, get_json, number, unix_s

SOURCE = "uk_carbon_intensity"
PUBLIC_URL = "https://api.carbonintensity.org.uk"
HALF_HOUR_S = 1800.0
EMISSION_FACTOR = "operational"
SIGNAL = "average"
REGION_IDS = range(1, 18)
"""The API's region ids: 1-14 the DNO regions, 15 England, 16 Scotland, 17 Wales."""
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


class UKCarbonIntensityClient(SourceClient):
    """Client of the GB Carbon Intensity API at ``base_url`` (the public one when None; ``client`` and the
    timeouts as :class:`~airflow_carbon.core.sources.http.SourceClient`'s). ``region`` is None (Great
    Britain), a region id (1-17) or an outward postcode ("RG10")."""

    source = SOURCE

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, PUBLIC_URL, headers={"Accept": "application/json"}, **kwargs)

    def current(self, region: int | str | None = None) -> list[IntensityInterval]:
        """The current half hour's figure (one interval)."""
        return self._intervals(self._get(_current_path(region)), regional=region is not None)

    async def acurrent(self, client: httpx.AsyncClient, region: int | str | None = None) -> list[IntensityInterval]:
        """:meth:`current` on an event loop, through ``client``."""
        body = await aget_json(client, self.base_url + _current_path(region), source=SOURCE, headers={"Accept": "application/json"})
        return self._intervals(body, regional=region is not None)

    def forecast(self, start: datetime, region: int | str | None = None) -> list[IntensityInterval]:
        """Half-hourly figures for the 24 h from ``start`` (an aware datetime), actual where known."""
        path = _forward_path(start, region)
        return self._intervals(self._get(path), regional=region is not None)

    async def aforecast(self, client: httpx.AsyncClient, start: datetime, region: int | str | None = None) -> list[IntensityInterval]:
        """:meth:`forecast` on an event loop, through ``client``."""
        body = await aget_json(client, self.base_url + _forward_path(start, region), source=SOURCE, headers={"Accept": "application/json"})
        return self._intervals(body, regional=region is not None)

    # -- internals ---------------------------------------------------------------------------------
    def _get(self, path: str) -> Any:
        return get_json(self._client, self.base_url + path, source=SOURCE)

    def _intervals(self, body: Any, *, regional: bool) -> list[IntensityInterval]:
        try:
            rows = body["data"]
            if regional:  # one entry per region, each with its own "data" series
                rows = rows[0]["data"] if isinstance(rows, list) else rows["data"]
            out = [_interval(row) for row in rows]
        except SHAPE_ERRORS as exc:
            raise self.shape_error(exc) from None
        if not out:
            raise SourceError(SOURCE, "no figures in the response")
        return out


def _interval(row: dict[str, Any]) -> IntensityInterval:
    intensity = row["intensity"]
    actual = intensity.get("actual")
    g = number(actual if actual is not None else intensity["forecast"], "intensity")
    return IntensityInterval(unix_s(row["from"]), unix_s(row["to"]), g, SOURCE, estimated=actual is None)


def _current_path(region: int | str | None) -> str:
    return "/intensity" if region is None else f"/regional/{_region_path(region)}"


def _forward_path(start: datetime, region: int | str | None) -> str:
    stamp = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    return f"/intensity/{stamp}/fw24h" if region is None else f"/regional/intensity/{stamp}/fw24h/{_region_path(region)}"


def _region_path(region: int | str) -> str:
    if isinstance(region, int) and not isinstance(region, bool):
        if region not in REGION_IDS:
            raise ValueError(f"GB region id {region} is invalid; expected 1-17 (1-14 DNO regions, 15 England, 16 Scotland, 17 Wales)")
        return f"regionid/{region}"
    text = str(region).strip().upper()
    if text.isdigit():
        return _region_path(int(text))
    if not _POSTCODE.match(text):
        raise ValueError(f"GB region {region!r} is invalid; expected a region id (1-17) or an outward postcode such as 'RG10'")
    return f"postcode/{text}"
