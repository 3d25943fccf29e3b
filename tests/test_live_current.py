"""The current figure of each live source (:func:`airflow_carbon.core.live.current` and its async twin
:func:`~airflow_carbon.core.live.acurrent`, which the CarbonIntensitySensor and its trigger read), against the
local simulators of the three APIs: the same figure and the same errors on both paths, no Airflow."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_carbon.core.live import LiveSpec, acurrent, current
from airflow_carbon.core.sources.http import SourceError, async_client
from airflow_carbon.core.units import lbs_per_mwh_to_g_per_kwh
from carbon_testing.gridsim import ElectricityMapsSim, UKCarbonIntensitySim, WattTimeSim

pytestmark = pytest.mark.unit


def _both(spec: LiveSpec, zone: str | None):
    """The figure through the sync and the async path."""
    return current(spec, zone), asyncio.run(acurrent(spec, zone))


def test_the_gb_api_gives_its_current_half_hour_national_and_regional():
    now = time.time()
    half_hour = now - now % 1800
    with UKCarbonIntensitySim({half_hour - 1800: 300, half_hour: 123, half_hour + 1800: 50}) as sim:
        spec = LiveSpec("uk_carbon_intensity", sim.url)
        for zone in (None, "13", "RG10"):
            sync, async_ = _both(spec, zone)
            assert sync == async_ and (sync.g_per_kwh, sync.start_s) == (123.0, half_hour), zone
        assert sim.requests[-2:] == ["/regional/postcode/RG10", "/regional/postcode/RG10"]
        with pytest.raises(ValueError, match="GB region id 99 is invalid"):
            asyncio.run(acurrent(spec, "99"))


def test_electricity_maps_gives_its_latest_hour_and_names_a_refused_token():
    now = time.time()
    hour = now - now % 3600
    with ElectricityMapsSim({"DE": {hour - 3600: 400.0, hour: 210.0}}, token="tok", now_s=now) as sim:
        spec = LiveSpec("electricitymaps", sim.url, token="tok", credentials="Connection 'em'")
        sync, async_ = _both(spec, "DE")
        assert sync == async_ and (sync.g_per_kwh, sync.start_s, sync.estimated) == (210.0, hour, False)
        assert {path for path, _ in sim.requests} == {"/v3/carbon-intensity/latest"}
        refused = LiveSpec("electricitymaps", sim.url, token="not-tok", credentials="Connection 'em'")
        for read in (lambda: current(refused, "DE"), lambda: asyncio.run(acurrent(refused, "DE"))):
            with pytest.raises(SourceError, match=r"HTTP 401: credentials refused \(credentials from Connection 'em'\)"):
                read()
        with pytest.raises(ValueError, match="electricitymaps needs a zone"):
            current(spec, None)


def test_watttime_gives_the_moer_now_in_grams_and_refuses_a_region_without_a_forecast():
    now = time.time()
    with WattTimeSim({"CAISO_NORTH": [900.0, 100.0], "PJM_DC": [700.0]}, username="u", password="p", now_s=now) as sim:
        spec = LiveSpec("watttime", sim.url, username="u", password="p")
        sync, async_ = _both(spec, "CAISO_NORTH")
        assert sync == async_ and sync.g_per_kwh == pytest.approx(lbs_per_mwh_to_g_per_kwh(900.0))
        assert sync.start_s <= now < sync.end_s
        for read in (lambda: current(spec, "PJM_DC"), lambda: asyncio.run(acurrent(spec, "PJM_DC"))):
            with pytest.raises(SourceError, match="HTTP 403: this account's plan has no forecast for PJM_DC"):
                read()  # a percentile exists for PJM_DC: never taken for grams


def test_a_client_kept_across_looks_logs_in_to_watttime_once():
    now = time.time()
    with WattTimeSim({"CAISO_NORTH": [900.0]}, username="u", password="p", now_s=now) as sim:
        spec = LiveSpec("watttime", sim.url, username="u", password="p")
        client = spec.client()

        async def three_looks() -> list[float]:
            async with async_client() as http:
                return [(await acurrent(spec, "CAISO_NORTH", client=client, http=http)).g_per_kwh for _ in range(3)]

        try:
            assert len(set(asyncio.run(three_looks()))) == 1
        finally:
            client.close()
        assert sim.logins == 1 and sim.requests.count("/v3/forecast") == 3
