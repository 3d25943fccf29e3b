"""Live grid intensity for one try: which source and zone, the intervals the try spans, and the fallback.

:class:`LiveSpec` is what a source needs (its name, API base URL, credentials and where they came from);
the Airflow layer builds it from a Connection, the CLI from a URI or the environment. :class:`LiveIntensity`
looks the try's intervals up through the host's :class:`~airflow_carbon.core.intensity_cache.IntensityCache`
and turns the try's energy into segments (:mod:`airflow_carbon.core.segments`) and the record's
``intensity``. It never raises: a source that fails leaves its intervals to the bundled figure of the
location (``fallback``), and says why (``<source>: <reason>``). No Airflow.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_carbon.core.intensity import GridIntensity
from airflow_carbon.core.intensity_cache import FAILURE_BACKOFF_S, IntensityCache
from airflow_carbon.core.segments import IntensityInterval, energy_segments, segment_emissions_g, weighted_g_per_kwh
from airflow_carbon.core.units import utc_iso

if TYPE_CHECKING:
    from airflow_carbon.core.sources.http import SourceClient

__all__ = ["SOURCES", "LiveIntensity", "LiveSpec", "SourceInfo", "acurrent", "aforecast", "current", "fetch", "forecast"]


@dataclass(frozen=True)
class SourceInfo:
    """What a live source is: its label, granularity (s), signal and emission factor, and its terms."""

    name: str
    label: str
    """Its name and what its figures are, for a record's ``source``."""
    short_name: str
    """Its name for people, in a line of the UI or the model card."""
    granularity_s: float
    signal: str
    """``average`` (the grid mix) or ``marginal`` (the generators that answer a change in load)."""
    emission_factor: str
    """The basis of its figures (the record's vocabulary: ``lifecycle`` or ``direct``)."""
    revises_past: bool
    """It serves actual figures for past intervals, so a forecast fetched earlier is worth replacing."""
    license: str
    default_conn_id: str


SOURCES: dict[str, SourceInfo] = {
    "electricitymaps": SourceInfo(
        "electricitymaps", "Electricity Maps", "Electricity Maps", 3600.0, "average", "lifecycle", True,
        "Electricity Maps API terms (the user's own key)", "electricitymaps_default",
    ),
    "watttime": SourceInfo(
        "watttime", "WattTime (marginal MOER)", "WattTime", 300.0, "marginal", "direct", False,
        "WattTime API terms (the user's own account)", "watttime_default",
    ),
    "uk_carbon_intensity": SourceInfo(
        "uk_carbon_intensity", "GB Carbon Intensity API (NESO), operational (combustion-only)", "GB Carbon Intensity",
        1800.0, "average",
        "direct", True, "CC BY 4.0 (NESO Carbon Intensity API)", "uk_carbon_intensity_default",
    ),
}
"""The live sources, by the name of their Connection type."""


def _source_info(source: str) -> SourceInfo:
    try:
        return SOURCES[source]
    except KeyError:
        raise ValueError(f"live intensity source {source!r} is unknown; expected one of {', '.join(SOURCES)}") from None


@dataclass(frozen=True)
class LiveSpec:
    """A live source's settings. ``credentials`` names where the secrets came from (a Connection id, an
    environment variable): refused credentials are reported by that name, the secrets never."""

    source: str
    base_url: str | None = None
    """The API's base URL; None: the public one."""
    token: str | None = field(default=None, repr=False)
    """Electricity Maps' token."""
    username: str | None = None
    """WattTime's login."""
    password: str | None = field(default=None, repr=False)
    """WattTime's password."""
    emission_factor: str | None = None
    """Electricity Maps: ``lifecycle`` (default) or ``direct``."""
    conn_id: str | None = None
    credentials: str | None = None

    def __post_init__(self) -> None:
        _source_info(self.source)  # ValueError naming the accepted sources
        if self.emission_factor is not None and self.emission_factor not in ("lifecycle", "direct"):
            raise ValueError(f"emission_factor={self.emission_factor!r} is invalid; expected 'lifecycle' or 'direct'")

    @property
    def info(self) -> SourceInfo:
        return SOURCES[self.source]

    @property
    def factor(self) -> str:
        """The basis of the figures this spec gets (``lifecycle`` or ``direct``)."""
        return self.emission_factor or self.info.emission_factor

    def client(self) -> SourceClient:
        """A new client of the source (ValueError where a credential it needs is missing)."""
        if self.source == "electricitymaps":
            from airflow_carbon.core.sources.electricitymaps import ElectricityMapsClient

            return ElectricityMapsClient(self.token or "", self.base_url, emission_factor=self.factor, credentials=self.credentials)
        if self.source == "watttime":
            from airflow_carbon.core.sources.watttime import WattTimeClient

            return WattTimeClient(self.username or "", self.password or "", self.base_url, credentials=self.credentials)
        from airflow_carbon.core.sources.uk_carbon_intensity import UKCarbonIntensityClient

        return UKCarbonIntensityClient(self.base_url)


def _region(zone: str | None) -> int | str | None:
    """The GB API's region of a zone: a region id as a number, an outward postcode as given, None for Great Britain."""
    return int(zone) if zone is not None and zone.isdigit() else zone


def _half_hour(t_s: float) -> datetime:
    """The start of the GB API's half hour holding ``t_s`` (Unix s), UTC."""
    return datetime.fromtimestamp(t_s - t_s % 1800, timezone.utc)


def fetch(client: Any, source: str, zone: str | None, start_s: float) -> list[IntensityInterval]:
    """One request's intervals for ``zone`` around ``start_s`` (Unix s): the GB API's 24 h from the half
    hour of ``start_s`` (actual where known), Electricity Maps' past 24 h (and its latest hour), WattTime's
    forecast from now. Raises SourceError (or ValueError for a zone the client refuses)."""
    if source == "uk_carbon_intensity":
        return client.forecast(_half_hour(start_s), _region(zone))
    if source == "electricitymaps":
        intervals = client.history(zone)
        if not any(i.start_s <= time.time() < i.end_s for i in intervals):
            intervals = [*intervals, *(i for i in client.latest(zone) if all(i.start_s != j.start_s for j in intervals))]
        return intervals
    return client.forecast(zone)


class LiveIntensity:
    """A try's live intensity from ``spec`` for ``zone`` (None: the source's national figure), falling back
    to ``fallback`` (the bundled figure of the location) where the source gives none. ``unavailable``: why
    the source cannot be used at all (no Connection, no zone for the location): every interval falls back.
    Thread-safe: the meter looks up from its sampling thread's helpers and from ``stop()``."""

    def __init__(self, spec: LiveSpec | None, zone: str | None, *, fallback: GridIntensity, conn_id: str | None = None,
                 cache: IntensityCache | None = None, unavailable: str | None = None) -> None:
        if spec is None and unavailable is None:
            raise ValueError("a LiveIntensity needs a LiveSpec, or the reason there is none (unavailable)")
        self.spec = spec
        self.source: str | None = spec.source if spec is not None else None
        """The source's name; None where its Connection could not be read."""
        self.info: SourceInfo | None = SOURCES[spec.source] if spec is not None else None
        self.conn_id = spec.conn_id if spec is not None else conn_id
        self.zone = zone
        self.fallback = fallback
        self.cache = cache if cache is not None else IntensityCache()
        self.unavailable = unavailable
        self.failure: str | None = unavailable
        """The last reason the source gave no figure (``<source>: <reason>``), if any."""
        self.requests = 0
        """Requests this object made to the source."""
        self._known: dict[float, IntensityInterval] = {}
        self._client: Any = None
        self._lock = threading.Lock()
        if spec is not None and unavailable is None:
            import httpx  # noqa: F401  # here, on the caller's thread: an import on a lookup thread waits on a busy task's GIL

    def __repr__(self) -> str:
        return f"LiveIntensity({self.source!r}, zone={self.zone!r}, conn_id={self.conn_id!r})"

    @property
    def series_name(self) -> str:
        """The cache's name of this source's series for the zone (one per API, zone and emission factor)."""
        assert self.spec is not None
        return IntensityCache.series_name(self.source, self.spec.base_url, self.zone, self.spec.factor)

    # -- lookups -----------------------------------------------------------------------------------
    def lookup(self, start_s: float, end_s: float, *, now_s: float | None = None) -> list[IntensityInterval]:
        """The intervals known for [``start_s``, ``end_s``] (Unix s), fetching (once per host, through the
        cache) where some are missing or a forecast the source has since revised. Never raises."""
        with self._lock:
            try:
                return self._lookup(start_s, end_s, time.time() if now_s is None else now_s)
            except Exception as exc:  # never break the task
                self.failure = f"{self.source or 'live intensity'}: {exc!r}"
                return self._covering(start_s, end_s)

    def next_boundary(self, t_s: float) -> float:
        """The first interval boundary after ``t_s`` (Unix s): the end of the known interval holding it,
        else the next multiple of the source's granularity."""
        for interval in list(self._known.values()):
            if interval.start_s <= t_s < interval.end_s:
                return interval.end_s
        if self.info is None:
            return math.inf
        g = self.info.granularity_s
        return (math.floor(t_s / g) + 1) * g

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- what the record says ------------------------------------------------------------------------
    def intensity(self, energy_points: Sequence[tuple[float, float]], pue: float, *, fetch_missing: bool = True
                  ) -> tuple[dict[str, Any], float]:
        """The record's ``intensity`` and ``emissions_g`` (g) for the try's (Unix s, cumulative J) points;
        ``fetch_missing=False`` uses only what is known already (a checkpoint, on the sampling thread)."""
        t0, t1 = energy_points[0][0], energy_points[-1][0]
        intervals = self.lookup(t0, t1) if fetch_missing else self._covering(t0, t1)
        fb = self.fallback
        segments = energy_segments(energy_points, intervals, fallback_g_per_kwh=fb.g_per_kwh, fallback_source=fb.source)
        live = [s for s in segments if s["source"] != fb.source] if intervals else []
        lost = len(live) < len(segments)
        common: dict[str, Any] = {"zone": self.zone, "conn_id": self.conn_id}
        if self.source is not None:
            common["live_source"] = self.source
        reason = (self.failure or f"{self.source}: no figure for part of the try") if lost else None
        if not live:
            out: dict[str, Any] = {**fb.to_dict(), **common, "fallback": reason or f"{self.source}: no figure"}
            return out, segment_emissions_g(segments, pue)
        assert self.info is not None
        out = {
            "g_per_kwh": weighted_g_per_kwh(segments),
            "location": fb.location,
            "name": fb.name if fb.location is not None or fb.method != "world-average" else (self.zone or self.info.label),
            "source": f"{self.info.label}" + (f", zone {self.zone}" if self.zone else ""),
            "year": None,
            "license": self.info.license,
            "method": "live",
            "emission_factor": self.spec.factor if self.spec is not None else self.info.emission_factor,
            **common,
            "signal": self.info.signal,
            "segments": [{**s, "start": utc_iso(s["start"]), "end": utc_iso(s["end"])} for s in segments],
        }
        if reason:
            out["fallback"] = reason
        return out, segment_emissions_g(segments, pue)

    # -- internals ---------------------------------------------------------------------------------
    def _covering(self, start_s: float, end_s: float) -> list[IntensityInterval]:
        return [i for i in list(self._known.values()) if i.end_s > start_s and i.start_s <= end_s]  # a snapshot: lookups add to it

    def _needs_fetch(self, cached: list[tuple[IntensityInterval, float]], start_s: float, end_s: float, now: float) -> bool:
        """Whether [start_s, end_s] has a gap, or a forecast the source may have replaced since."""
        t = start_s
        for interval, fetched in sorted(cached, key=lambda c: c[0].start_s):
            if interval.end_s <= t:
                continue
            if interval.start_s > t:
                return True
            stale = interval.estimated and now - fetched >= self.info.granularity_s
            if stale and (self.info.revises_past or interval.end_s > now):
                return True
            t = interval.end_s
            if t > end_s:
                return False
        return True

    def _remember(self, intervals: Sequence[IntensityInterval]) -> None:
        for interval in intervals:
            for start in [s for s, k in self._known.items() if k.start_s < interval.end_s and interval.start_s < k.end_s]:
                del self._known[start]
            self._known[interval.start_s] = interval

    def _lookup(self, start_s: float, end_s: float, now: float) -> list[IntensityInterval]:
        if self.unavailable is not None or self.spec is None:
            return []
        name = self.series_name
        try:
            state = self.cache.read(name, now_s=now)
        except OSError:
            state = None
        if state is not None:
            self._remember([c.interval for c in state.intervals])
            cached = [(c.interval, c.fetched_s) for c in state.intervals]
            if not self._needs_fetch(cached, start_s, end_s, now):
                return self._covering(start_s, end_s)
            if state.failure:
                self.failure = state.failure  # another task of this host was refused a moment ago: do not ask again
                return self._covering(start_s, end_s)
        waited_from = time.monotonic()
        try:
            with self.cache.lock(name) as held:
                if not held:
                    self.failure = f"{self.source}: another task on this host held the request for longer than allowed"
                    return self._covering(start_s, end_s)
                later = now + time.monotonic() - waited_from
                state = self.cache.read(name, now_s=later)  # another task may have fetched meanwhile
                self._remember([c.interval for c in state.intervals])
                cached = [(c.interval, c.fetched_s) for c in state.intervals]
                if not self._needs_fetch(cached, start_s, end_s, later):
                    return self._covering(start_s, end_s)
                if state.failure:
                    self.failure = state.failure
                    return self._covering(start_s, end_s)
                self._fetch_into_cache(name, start_s)
        except OSError:  # no usable cache directory: ask the source directly
            self._fetch_into_cache(name, start_s, cache=False)
        return self._covering(start_s, end_s)

    def _fetch_into_cache(self, name: str, start_s: float, *, cache: bool = True) -> None:
        from airflow_carbon.core.sources.http import SourceError

        assert self.spec is not None
        try:
            if self._client is None:
                self._client = self.spec.client()
            self.requests += 1
            intervals = fetch(self._client, self.source, self.zone, start_s)
        except (SourceError, ValueError) as exc:  # ValueError: a zone or credential the client refuses
            self.failure = str(exc) if isinstance(exc, SourceError) else f"{self.source}: {exc}"
            retry_after_s = exc.retry_after_s if isinstance(exc, SourceError) else None
            if cache:
                with contextlib.suppress(OSError):
                    self.cache.write_failure(name, self.failure, until_s=time.time() + max(FAILURE_BACKOFF_S, retry_after_s or 0.0))
            return
        self._remember(intervals)
        if cache:
            with contextlib.suppress(OSError):
                self.cache.write(name, intervals, fetched_s=time.time())


def forecast(spec: LiveSpec, zone: str | None, *, cache: IntensityCache | None = None,
             now_s: float | None = None) -> list[IntensityInterval]:
    """The source's forecast for ``zone`` from ``now_s`` (Unix s; default now), through the host's cache: one
    request per host while the cached forecast is younger than the source's granularity, a failure remembered
    for :data:`~airflow_carbon.core.intensity_cache.FAILURE_BACKOFF_S` (or ``Retry-After``). Raises SourceError
    (ValueError for a zone or credential the client refuses); a cache that cannot be written is skipped."""
    from airflow_carbon.core.sources.http import SourceError

    now = time.time() if now_s is None else now_s
    cache = cache if cache is not None else IntensityCache()
    name = IntensityCache.series_name("forecast", spec.source, spec.base_url, zone, spec.factor)

    def fresh(state: Any) -> list[IntensityInterval] | None:
        if state.failure:
            raise SourceError(spec.source, state.failure.removeprefix(f"{spec.source}: "))
        recent = [c.interval for c in state.intervals if now - c.fetched_s < spec.info.granularity_s]
        if any(i.start_s <= now < i.end_s for i in recent):
            return [i for i in recent if i.end_s > now]
        return None

    try:
        if (cached := fresh(cache.read(name, now_s=now))) is not None:
            return cached
        with cache.lock(name) as held:
            if held and (cached := fresh(cache.read(name, now_s=now))) is not None:
                return cached
            intervals = _fetch_forecast(spec, zone, now, cache, name)
    except OSError:  # no usable cache directory: ask the source directly
        intervals = _fetch_forecast(spec, zone, now, None, name)
    return [i for i in intervals if i.end_s > now]


def _fetch_forecast(spec: LiveSpec, zone: str | None, now: float, cache: IntensityCache | None, name: str
                    ) -> list[IntensityInterval]:
    from airflow_carbon.core.sources.http import SourceError

    client = spec.client()
    try:
        if spec.source == "uk_carbon_intensity":
            intervals = client.forecast(_half_hour(now), _region(zone))
        elif zone is None:
            raise ValueError(f"{spec.source} needs a zone")
        else:
            intervals = client.forecast(zone)
    except SourceError as exc:
        if cache is not None:
            with contextlib.suppress(OSError):
                cache.write_failure(name, str(exc), until_s=time.time() + max(FAILURE_BACKOFF_S, exc.retry_after_s or 0.0))
        raise
    finally:
        client.close()
    if cache is not None:
        with contextlib.suppress(OSError):
            cache.write(name, intervals, fetched_s=time.time(), now_s=now)
    return intervals


async def aforecast(spec: LiveSpec, zone: str | None, *, start_s: float | None = None) -> list[IntensityInterval]:
    """The source's forecast for ``zone`` on an event loop (the triggerer's): the GB API's 24 h from the half
    hour of ``start_s`` (Unix s; default now), Electricity Maps' and WattTime's forecasts. Raises SourceError
    (ValueError for a zone or credential the client refuses), exactly as the sync path."""
    from airflow_carbon.core.sources.http import async_client

    client = spec.client()
    try:
        async with async_client() as http:
            if spec.source == "uk_carbon_intensity":
                t = time.time() if start_s is None else start_s
                return await client.aforecast(http, _half_hour(t), _region(zone))
            if zone is None:
                raise ValueError(f"{spec.source} needs a zone")
            return await client.aforecast(http, zone)
    finally:
        client.close()


# -- the current figure (a sensor waits for it to fall below a threshold) ------------------------------




def _now_figure(intervals: Sequence[IntensityInterval], now: float) -> IntensityInterval:
    """The interval holding ``now`` (Unix s), else the latest that began before it, else the first."""
    holding = [i for i in intervals if i.start_s <= now < i.end_s]
    begun = [i for i in intervals if i.start_s <= now]
    return holding[0] if holding else max(begun, key=lambda i: i.start_s) if begun else intervals[0]


def current(spec: LiveSpec, zone: str | None, *, client: SourceClient | None = None,
            now_s: float | None = None) -> IntensityInterval:
    """The source's figure for now (gCO2e/kWh) for ``zone``: Electricity Maps' latest hour, the GB API's current
    half hour, the first point of WattTime's MOER forecast (a free account outside CAISO_NORTH gets a 403: no
    grams, never a percentile taken for grams). ``client``: one of ``spec.client()`` kept across calls
    (WattTime keeps its login); None: a new one, closed after. Raises SourceError (ValueError for a zone or
    credential the client refuses). No cache: a caller polls at its own interval."""
    own = client is None
    api: Any = spec.client() if client is None else client
    try:
        if spec.source == "uk_carbon_intensity":
            intervals = api.current(_region(zone))
        elif zone is None:
            raise ValueError(f"{spec.source} needs a zone")
        elif spec.source == "electricitymaps":
            intervals = api.latest(zone)
        else:
            intervals = api.forecast(zone)
    finally:
        if own:
            api.close()
    return _now_figure(intervals, time.time() if now_s is None else now_s)


async def acurrent(spec: LiveSpec, zone: str | None, *, client: SourceClient | None = None, http: Any = None,
                   now_s: float | None = None) -> IntensityInterval:
    """:func:`current` on an event loop (the triggerer's): the same requests, the same SourceErrors. ``http``:
    an ``httpx.AsyncClient`` the caller's loop owns (:func:`~airflow_carbon.core.sources.http.async_client`);
    None: a new one for this call."""
    from airflow_carbon.core.sources.http import async_client

    own = client is None
    api: Any = spec.client() if client is None else client
    try:
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(async_client())
            if spec.source == "uk_carbon_intensity":
                intervals = await api.acurrent(http, _region(zone))
            elif zone is None:
                raise ValueError(f"{spec.source} needs a zone")
            elif spec.source == "electricitymaps":
                intervals = await api.alatest(http, zone)
            else:
                intervals = await api.aforecast(http, zone)
    finally:
        if own:
            api.close()
    return _now_figure(intervals, time.time() if now_s is None else now_s)
