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
from airflow_carbon.core.sources.http import SourceError, get_json, timeout

SOURCE = "uk_carbon_intensity"
PUBLIC_URL = "https://api.carbonintensity.org.uk"
HALF_HOUR_S = 1800.0
EMISSION_FACTOR = "operational"
SIGNAL = "average"
REGION_IDS = range(1, 18)
"""The API's region ids: 1-14 the DNO regions, 15 England, 16 Scotland, 17 Wales."""
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


class UKCarbonIntensityClient:
    """Client of the GB Carbon Intensity API at ``base_url`` (the public one when None). ``region`` is
    None (Great Britain), a region id (1-17) or an outward postcode ("RG10")."""

    def __init__(self, base_url: str | None = None, *, client: httpx.Client | None = None,
                 connect_timeout_s: float = 3.0, read_timeout_s: float = 5.0) -> None:
        self.base_url = (base_url or PUBLIC_URL).rstrip("/")
        self._client = client or httpx.Client(timeout=timeout(connect_timeout_s, read_timeout_s),
                                              headers={"Accept": "application/json"})

    def close(self) -> None:
        self._client.close()

    def current(self, region: int | str | None = None) -> list[IntensityInterval]:
        """The current half hour's figure (one interval)."""
        if region is None:
            return self._intervals(self._get("/intensity"), regional=False)
        return self._intervals(self._get(f"/regional/{_region_path(region)}"), regional=True)

    def forecast(self, start: datetime, region: int | str | None = None) -> list[IntensityInterval]:
        """Half-hourly figures for the 24 h from ``start`` (an aware datetime), actual where known."""
        stamp = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        if region is None:
            return self._intervals(self._get(f"/intensity/{stamp}/fw24h"), regional=False)
        return self._intervals(self._get(f"/regional/intensity/{stamp}/fw24h/{_region_path(region)}"), regional=True)

    # -- internals ---------------------------------------------------------------------------------
    def _get(self, path: str) -> Any:
        return get_json(self._client, self.base_url + path, source=SOURCE)

    def _intervals(self, body: Any, *, regional: bool) -> list[IntensityInterval]:
        try:
            rows = body["data"]
            if regional:  # one entry per region, each with its own "data" series
                rows = rows[0]["data"] if isinstance(rows, list) else rows["data"]
            out = [_interval(row) for row in rows]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise SourceError(SOURCE, f"unexpected response shape ({type(exc).__name__}: {exc})") from None
        if not out:
            raise SourceError(SOURCE, "no figures in the response")
        return out


def _interval(row: dict[str, Any]) -> IntensityInterval:
    intensity = row["intensity"]
    actual = intensity.get("actual")
    g = actual if actual is not None else intensity["forecast"]
    if not isinstance(g, (int, float)) or isinstance(g, bool):
        raise ValueError(f"intensity {g!r} is not a number")
    return IntensityInterval(_time(row["from"]), _time(row["to"]), float(g), SOURCE, estimated=actual is None)


def _time(text: str) -> float:
    """Unix seconds of the API's ``2018-01-20T12:00Z``."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc).timestamp()


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
