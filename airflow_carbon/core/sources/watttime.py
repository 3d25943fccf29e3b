"""WattTime API v3: marginal emissions (MOER, ``co2_moer``) by grid region, 5-minute forecast and index.

``GET /login`` with HTTP Basic auth (the Connection's login and password) returns a bearer token, valid
30 minutes: it is renewed before it expires and once on a 401. The forecast's values are lbs CO2/MWh,
turned into gCO2e/kWh (x 0.45359237). A marginal signal is the emissions of the generators that answer
a change in load, not the grid's average: intervals say ``watttime`` (marginal) as their source.

A free account gets forecasts only for ``CAISO_NORTH``; elsewhere it gets ``/v3/signal-index``, a
percentile (0-100) of the region's recent MOER, which is not grams: :meth:`WattTimeClient.signal_index`
returns it as such, and the forecast of such a region raises SourceError saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.sources.http import SHAPE_ERRORS, SourceClient, SourceError, aget_json, get_json, number, unix_s
from airflow_carbon.core.units import G_PER_KWH_PER_LBS_PER_MWH, lbs_per_mwh_to_g_per_kwh

SOURCE = "watttime"
PUBLIC_URL = "https://api.watttime.org"
SIGNAL = "marginal"
__all__ = ["G_PER_KWH_PER_LBS_PER_MWH", "SOURCE", "SignalIndex", "WattTimeClient"]
TOKEN_LIFETIME_S = 30 * 60
_RENEW_MARGIN_S = 60


@dataclass(frozen=True)
class SignalIndex:
    """The percentile (0-100) of a region's current MOER among its recent values, at ``point_time_s``
    (Unix seconds): where the region stands, not an emissions figure."""

    region: str
    percentile: float
    point_time_s: float


class WattTimeClient(SourceClient):
    """Client of WattTime v3 at ``base_url`` (the public one when None). ``credentials`` names where the
    login and password came from, for a refused login's message; ``clock`` gives seconds (monotonic) for
    the token's lifetime; ``client`` and the timeouts as :class:`~airflow_carbon.core.sources.http.SourceClient`'s."""

    source = SOURCE

    def __init__(self, username: str, password: str, base_url: str | None = None, *, credentials: str | None = None,
                 clock: Any = time.monotonic, **kwargs: Any) -> None:
        if not username or not password:
            raise ValueError("WattTime needs a login and a password (the Connection's); one of them is empty")
        super().__init__(base_url, PUBLIC_URL, **kwargs)
        self.credentials = credentials
        self._auth = (username, password)
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0

    def __repr__(self) -> str:  # never the password or the token
        return f"WattTimeClient(base_url={self.base_url!r}, username={self._auth[0]!r})"

    def forecast(self, region: str) -> list[IntensityInterval]:
        """The region's MOER forecast, one interval per data point (5 min), in gCO2e/kWh, all ``estimated``."""
        return self._forecast_intervals(self._get("/v3/forecast", {"region": region, "signal_type": "co2_moer"}, region), region)

    async def aforecast(self, client: httpx.AsyncClient, region: str) -> list[IntensityInterval]:
        """:meth:`forecast` on an event loop, through ``client`` (logging in through it too where needed)."""
        params = {"region": region, "signal_type": "co2_moer"}
        for attempt in (1, 2):
            if self._token is None or self._clock() >= self._token_until:
                body = await aget_json(client, self.base_url + "/login", source=SOURCE, auth=self._auth, credentials=self.credentials)
                self._keep_token(body)
            try:
                body = await aget_json(client, self.base_url + "/v3/forecast", source=SOURCE, params=params,
                                       headers={"Authorization": f"Bearer {self._token}"}, credentials=self.credentials)
                return self._forecast_intervals(body, region)
            except SourceError as exc:
                if not self._retry(exc, attempt, "/v3/forecast", region):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _forecast_intervals(self, body: Any, region: str) -> list[IntensityInterval]:
        try:
            meta, rows = body["meta"], body["data"]
            if meta.get("units") != "lbs_co2_per_mwh":
                raise ValueError(f"units {meta.get('units')!r}, expected 'lbs_co2_per_mwh'")
            period_s = float(meta.get("data_point_period_seconds") or 300)
            out = []
            for row in rows:
                g = lbs_per_mwh_to_g_per_kwh(number(row["value"], "value"))
                start = unix_s(row["point_time"])
                out.append(IntensityInterval(start, start + period_s, g, f"{SOURCE}:{region}", True))
        except SHAPE_ERRORS as exc:
            raise self.shape_error(exc) from None
        if not out:
            raise SourceError(SOURCE, f"no forecast for {region} in the response")
        return out

    def signal_index(self, region: str) -> SignalIndex:
        """The region's current MOER percentile (what a free account gets everywhere)."""
        body = self._get("/v3/signal-index", {"region": region, "signal_type": "co2_moer"}, region)
        try:
            (row,) = body["data"][:1]
            return SignalIndex(region, number(row["value"], "value"), unix_s(row["point_time"]))
        except SHAPE_ERRORS as exc:
            raise self.shape_error(exc) from None

    # -- internals ---------------------------------------------------------------------------------
    def _login(self) -> str:
        return self._keep_token(get_json(self._client, self.base_url + "/login", source=SOURCE, auth=self._auth,
                                         credentials=self.credentials))

    def _keep_token(self, body: Any) -> str:
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceError(SOURCE, "the login response has no token")
        self._token, self._token_until = token, self._clock() + TOKEN_LIFETIME_S - _RENEW_MARGIN_S
        return token

    def _retry(self, exc: SourceError, attempt: int, path: str, region: str) -> bool:
        """Whether to log in again and retry (a first 401); raises the plan's 403 for a forecast, said so."""
        if exc.reason.startswith("HTTP 401") and attempt == 1:  # expired early: log in again, once
            self._token = None
            return True
        if exc.reason.startswith("HTTP 403") and path == "/v3/forecast":
            raise SourceError(SOURCE, f"HTTP 403: this account's plan has no forecast for {region} "
                                      "(a free account gets CAISO_NORTH, elsewhere only the percentile signal index)") from None
        return False

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_until:
            return self._login()
        return self._token

    def _get(self, path: str, params: dict[str, str], region: str) -> Any:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}"}
            try:
                return get_json(self._client, self.base_url + path, source=SOURCE, params=params, headers=headers,
                                credentials=self.credentials)
            except SourceError as exc:
                if not self._retry(exc, attempt, path, region):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

