"""A local GB Carbon Intensity API (real HTTP on loopback) for tests: the request paths and response
shapes of api.carbonintensity.org.uk as its documentation shows them, over a half-hourly series the
test sets, and the failures a live source has (``fail``: "500", "429", "malformed", "slow", "drop", "400").

    with UKCarbonIntensitySim(series={t0: 200, t0 + 1800: 150}) as sim:
        UKCarbonIntensityClient(sim.url).current()

Series keys are Unix seconds of half-hour starts; a value is (actual, forecast) or one number (forecast
and actual alike); ``actual_until`` marks later intervals as forecast only (``actual: null``).
``interval_s`` shortens the half hour (tests of tries that cross intervals: the times then carry seconds).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HALF_HOUR_S = 1800
_REGIONS = {n: (f"DNO region {n}", f"Region {n}") for n in range(1, 15)} | {15: ("England", "England"), 16: ("Scotland", "Scotland"), 17: ("Wales", "Wales")}


def _stamp(t: float) -> str:
    when = datetime.fromtimestamp(t, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%MZ" if when.second == 0 else "%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc).timestamp()


def _failed(h: BaseHTTPRequestHandler, fail: str | None, retry_after: str) -> bool:
    """Serve the failure ``fail`` names, if any ("slow" only delays the answer); whether it answered."""
    if fail == "drop":
        h.connection.close()
        return True
    if fail == "slow":
        time.sleep(2.0)
    if fail in ("500", "503", "400", "429"):
        code = int(fail)
        headers = {"Retry-After": retry_after} if code == 429 else {}
        message = {500: "Internal Server Error", 503: "Service Unavailable", 400: "Bad Request", 429: "Too Many Requests"}[code]
        _send(h, code, {"error": {"code": f"{code} {message}", "message": message}}, headers)
        return True
    if fail == "malformed":
        _send(h, 200, b'{"data": [{"from": ')
        return True
    return False


def _send(h: BaseHTTPRequestHandler, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h.send_response(code)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def _index(g: float) -> str:
    return "very low" if g < 40 else "low" if g < 120 else "moderate" if g < 200 else "high" if g < 290 else "very high"


class _LoopbackAPI:
    """A threaded HTTP server on 127.0.0.1 whose GETs go to ``_serve``; ``fail`` and ``retry_after`` as above."""

    def __init__(self) -> None:
        self.fail: str | None = None
        self.retry_after = "7"
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def _request(h: BaseHTTPRequestHandler) -> tuple[str, dict[str, str]]:
        """The request's path and its query parameters (the first value of each)."""
        parts = urlsplit(h.path)
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


class UKCarbonIntensitySim(_LoopbackAPI):
    """The simulator; ``requests`` lists the paths it served, ``now_s`` is its clock (settable)."""

    def __init__(self, series: dict[float, Any], *, actual_until: float | None = None, now_s: float | None = None,
                 interval_s: float = HALF_HOUR_S) -> None:
        self.series = {float(k): v for k, v in series.items()}
        self.interval_s = interval_s
        self.actual_until = actual_until
        self.now_s = now_s
        self.requests: list[str] = []
        super().__init__()

    # -- the API -----------------------------------------------------------------------------------
    def _row(self, start: float) -> dict[str, Any] | None:
        value = self.series.get(start)
        if value is None:
            return None
        actual, forecast = value if isinstance(value, tuple) else (value, value)
        if self.actual_until is not None and start >= self.actual_until:
            actual = None
        g = actual if actual is not None else forecast
        return {"from": _stamp(start), "to": _stamp(start + self.interval_s),
                "intensity": {"forecast": forecast, "actual": actual, "index": _index(g)}}

    def _now_start(self) -> float:
        now = time.time() if self.now_s is None else self.now_s
        return now - now % self.interval_s

    def _forward(self, start: float) -> list[dict[str, Any]]:
        """The 24 h from the interval after ``start`` (``start`` itself where it begins one), as the API."""
        step = self.interval_s
        first = start - start % step + (step if start % step else 0)
        rows = (self._row(t) for t in sorted(self.series) if first <= t < first + 24 * 3600)
        return [r for r in rows if r is not None]

    def _regional(self, rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
        regionid = int(value) if key == "regionid" else 13
        dno, short = _REGIONS[regionid]
        entry: dict[str, Any] = {"regionid": regionid, "dnoregion": dno, "shortname": short}
        if key == "postcode":
            entry["postcode"] = value
        regional_rows = [{"from": r["from"], "to": r["to"], "intensity": {"forecast": r["intensity"]["forecast"], "index": r["intensity"]["index"]},
                          "generationmix": [{"fuel": "gas", "perc": 40.0}, {"fuel": "wind", "perc": 60.0}]} for r in rows]
        return {**entry, "data": regional_rows}

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append(h.path)
        if _failed(h, self.fail, self.retry_after):
            return
        path = h.path.split("?")[0]
        now = self._now_start()
        if path == "/intensity":
            row = self._row(now)
            return _send(h, 200, {"data": [row] if row else []})
        if m := re.fullmatch(r"/intensity/([0-9T:\-]+Z)/fw24h", path):
            return _send(h, 200, {"data": self._forward(_parse(m[1]))})
        if m := re.fullmatch(r"/regional/(regionid|postcode)/([A-Za-z0-9]+)", path):
            if not self._known(m[1], m[2]):
                return self._bad(h)
            row = self._row(now)
            return _send(h, 200, {"data": [self._regional([row] if row else [], m[1], m[2])]})
        if m := re.fullmatch(r"/regional/intensity/([0-9T:\-]+Z)/fw24h/(regionid|postcode)/([A-Za-z0-9]+)", path):
            if not self._known(m[2], m[3]):
                return self._bad(h)
            return _send(h, 200, {"data": self._regional(self._forward(_parse(m[1])), m[2], m[3])})
        return self._bad(h)

    @staticmethod
    def _known(key: str, value: str) -> bool:
        return int(value) in _REGIONS if key == "regionid" and value.isdigit() else key == "postcode"

    def _bad(self, h: BaseHTTPRequestHandler) -> None:
        _send(h, 400, {"error": {"code": "400 Bad Request", "message": "Please enter a valid region ID."}})



class ElectricityMapsSim(_LoopbackAPI):
    """A local Electricity Maps v3 API: ``/v3/carbon-intensity/{latest,history,forecast}?zone=``, the
    ``auth-token`` header checked against ``token``, hourly ``series`` per zone ({zone: {hour start s: g}}),
    and the failures of :class:`UKCarbonIntensitySim` (``fail``; ``fail_forecast``: the forecast endpoint
    only). A request may name its place by ``lat`` and ``lon`` instead of ``zone``, as the API allows:
    ``places`` maps (lat, lon) to the zone that holds it. ``forecasts`` ({zone: {point start s: g}}) replaces
    the forecast of ``series`` with points at any spacing (a minute apart: a test's wait stays short); a
    zone's points may also be a function of the time of the request (Unix s), for a forecast that moves on.
    ``now_s`` is its clock; None follows the wall clock (a long test that may cross an hour)."""

    def __init__(self, series: dict[str, dict[float, float]], *, token: str, now_s: float | None,
                 places: dict[tuple[float, float], str] | None = None,
                 forecasts: dict[str, dict[float, float] | Callable[[float], dict[float, float]]] | None = None) -> None:
        self.series, self.token, self.now_s = series, token, now_s
        self.places = places or {}
        self.forecasts = forecasts or {}
        self.fail_forecast: str | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        super().__init__()

    def _row(self, zone: str, start: float, factor: str, *, forecast: bool = False) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        g = self.series[zone][start] * (1.0 if factor == "lifecycle" else 0.8)
        if forecast:
            return {"carbonIntensity": round(g), "datetime": stamp}
        return {"zone": zone, "carbonIntensity": round(g), "datetime": stamp, "updatedAt": stamp, "createdAt": stamp,
                "emissionFactorType": factor, "isEstimated": False, "estimationMethod": None}

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path, query = self._request(h)
        self.requests.append((path, query))
        if _failed(h, self.fail_forecast if path.endswith("/forecast") and self.fail_forecast else self.fail, self.retry_after):
            return
        if h.headers.get("auth-token") != self.token:
            return _send(h, 401, {"message": "Unauthorized"})
        zone, factor = query.get("zone", ""), query.get("emissionFactorType", "lifecycle")
        if not zone and "lat" in query and "lon" in query:
            zone = self.places.get((float(query["lat"]), float(query["lon"])), "")
        if path == "/v3/carbon-intensity/forecast" and zone in self.forecasts:
            points = self.forecasts[zone]
            points = sorted((points(time.time()) if callable(points) else points).items())
            rows = [{"carbonIntensity": round(g * (1.0 if factor == "lifecycle" else 0.8)),
                     "datetime": datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")} for t, g in points]
            return _send(h, 200, {"zone": zone, "forecast": rows, "updatedAt": rows[0]["datetime"]})
        if zone not in self.series:
            return _send(h, 400, {"message": f"Zone '{zone}' does not exist."})
        now = time.time() if self.now_s is None else self.now_s
        hour = now - now % 3600
        known = sorted(self.series[zone])
        if path == "/v3/carbon-intensity/latest" and hour in self.series[zone]:
            return _send(h, 200, self._row(zone, hour, factor))
        if path == "/v3/carbon-intensity/history":
            rows = [self._row(zone, t, factor) for t in known if hour - 24 * 3600 < t <= hour]
            return _send(h, 200, {"zone": zone, "history": rows})
        if path == "/v3/carbon-intensity/forecast":
            rows = [self._row(zone, t, factor, forecast=True) for t in known if t >= hour]
            return _send(h, 200, {"zone": zone, "forecast": rows, "updatedAt": rows[0]["datetime"] if rows else None})
        return _send(h, 404, {"message": "Not found"})


class WattTimeSim(_LoopbackAPI):
    """A local WattTime v3 API: ``/login`` (HTTP Basic, ``username``/``password``) issuing bearer tokens,
    ``/v3/forecast`` (5-minute MOER, lbs/MWh) for the regions in ``subscribed`` (a free account:
    CAISO_NORTH only; 403 elsewhere) and ``/v3/signal-index`` (percentile) for every region in ``moer``
    ({region: [lbs/MWh per 5 min from ``now_s``]}). :meth:`expire_tokens` makes every issued token stale."""

    def __init__(self, moer: dict[str, list[float]], *, username: str, password: str, now_s: float,
                 subscribed: tuple[str, ...] = ("CAISO_NORTH",)) -> None:
        self.moer, self.username, self.password, self.now_s, self.subscribed = moer, username, password, now_s, subscribed
        self.tokens: set[str] = set()
        self.logins = 0
        self.requests: list[str] = []
        super().__init__()

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path, query = self._request(h)
        self.requests.append(path)
        if _failed(h, self.fail, self.retry_after):
            return
        if path == "/login":
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if h.headers.get("Authorization") != expected:
                return _send(h, 403, {"error": "Forbidden", "message": "Invalid username or password"})
            self.logins += 1
            token = f"wt-token-{self.logins}"
            self.tokens.add(token)
            return _send(h, 200, {"token": token})
        bearer = (h.headers.get("Authorization") or "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            return _send(h, 401, {"error": "Unauthorized", "message": "Token is expired or invalid"})
        region = query.get("region", "")
        if region not in self.moer:
            return _send(h, 400, {"error": "Bad Request", "message": f"Invalid region: {region}"})
        start = self.now_s - self.now_s % 300
        meta = {"region": region, "signal_type": "co2_moer", "model": {"date": "2026-03-01"},
                "data_point_period_seconds": 300}
        if path == "/v3/forecast":
            if region not in self.subscribed:
                return _send(h, 403, {"error": "Forbidden", "message": f"Your plan does not include forecast data for {region}"})
            rows = [{"point_time": datetime.fromtimestamp(start + n * 300, timezone.utc).isoformat(), "value": v}
                    for n, v in enumerate(self.moer[region])]
            stamp = datetime.fromtimestamp(start, timezone.utc).isoformat()
            return _send(h, 200, {"data": rows, "meta": {**meta, "units": "lbs_co2_per_mwh", "generated_at": stamp}})
        if path == "/v3/signal-index":
            values = self.moer[region]
            percentile = round(100 * sum(v <= values[0] for v in values) / len(values))
            row = {"point_time": datetime.fromtimestamp(start, timezone.utc).isoformat(), "value": percentile}
            return _send(h, 200, {"data": [row], "meta": {**meta, "units": "percentile"}})
        return _send(h, 404, {"error": "Not Found", "message": path})


def _lookup_in_child(barrier: Any, spec: Any, zone: str | None, cache_dir: str, location: str, queue: Any) -> None:
    from airflow_carbon.core.intensity import resolve_intensity
    from airflow_carbon.core.intensity_cache import IntensityCache
    from airflow_carbon.core.live import LiveIntensity

    live = LiveIntensity(spec, zone, fallback=resolve_intensity(location), cache=IntensityCache(cache_dir))
    barrier.wait()
    now = time.time()
    t0 = time.perf_counter()
    intervals = live.lookup(now, now)
    queue.put((time.perf_counter() - t0, len(intervals), live.requests, live.failure))


def lookups_from_processes(n: int, spec: Any, zone: str | None, cache_dir: str, *, location: str = "GB") -> list[tuple[float, int, int, str | None]]:
    """``n`` processes (forked, as a worker's task processes) look the current interval up at once through
    one cache directory: each one's (seconds, intervals found, requests it made, failure)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    children = [ctx.Process(target=_lookup_in_child, args=(barrier, spec, zone, cache_dir, location, queue)) for _ in range(n)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    return results
