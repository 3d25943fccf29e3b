"""Live grid intensity in the core: a meter's window against local simulators of the sources (real HTTP
on loopback), the host-wide cache across processes, and every failure falling back with its reason."""

from __future__ import annotations

import time

import pytest

from airflow_carbon import EnergyMeter
from airflow_carbon.core.intensity import resolve_intensity
from airflow_carbon.core.intensity_cache import IntensityCache
from airflow_carbon.core.live import LiveIntensity, LiveSpec
from airflow_carbon.core.sources.http import unix_s
from carbon_testing.gridsim import ElectricityMapsSim, UKCarbonIntensitySim, WattTimeSim, lookups_from_processes

pytestmark = pytest.mark.unit

STEP_S = 1.0


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(2_000))


def _series(first: float, n: int = 60) -> dict[float, float]:
    return {first + STEP_S * k: 200.0 + 10 * k for k in range(-2, n)}


def _uk(sim: UKCarbonIntensitySim, cache_dir, **kwargs) -> LiveIntensity:
    return LiveIntensity(LiveSpec("uk_carbon_intensity", sim.url, **kwargs), None, fallback=resolve_intensity("GB"),
                         cache=IntensityCache(cache_dir))


def test_a_window_that_loses_the_source_keeps_its_live_segments(tmp_path, fake_gpu):
    fake_gpu("count=1; power=const:250")
    now = time.time()
    first = now - now % STEP_S
    with UKCarbonIntensitySim({first + k: 200.0 + 10 * k for k in (-1, 0, 1)}, interval_s=STEP_S) as sim:
        live = _uk(sim, tmp_path)  # the source knows the next two intervals, no more
        warned = pytest.warns(UserWarning, match="grid intensity: .* used the bundled figure")
        with warned, EnergyMeter(location="GB", live=live) as meter:
            deadline = time.monotonic() + 20
            while not sim.requests and time.monotonic() < deadline:  # the lookup at the start, in the background
                _busy(0.05)
            sim.fail = "500"  # the source goes down
            while time.time() < first + 2.5:  # and the window runs on, past what was fetched
                _busy(0.05)
    record = meter.record
    i = record["intensity"]
    assert i["method"] == "live"
    assert i["fallback"] == "uk_carbon_intensity: HTTP 500: Internal Server Error"
    live_part = [s for s in i["segments"] if s["source"] == "uk_carbon_intensity"]
    lost = [s for s in i["segments"] if s["source"] != "uk_carbon_intensity"]
    assert live_part and all(not s["estimated"] for s in live_part)
    assert lost and all(s["estimated"] and s["g_per_kwh"] == resolve_intensity("GB").g_per_kwh for s in lost)
    assert unix_s(lost[0]["start"]) == pytest.approx(first + 2)  # from where the known intervals end
    assert sum(s["energy_kwh"] for s in i["segments"]) == pytest.approx(record["energy_kwh"], rel=1e-9)


@pytest.mark.parametrize("fail, reason", [
    ("500", "uk_carbon_intensity: HTTP 500: Internal Server Error"),
    ("429", "uk_carbon_intensity: HTTP 429: rate limited, retry after 7 s"),
    ("malformed", "uk_carbon_intensity: malformed JSON in an HTTP 200 response"),
    ("drop", "uk_carbon_intensity: unreachable (RemoteProtocolError)"),
])
def test_a_failing_source_falls_back_with_its_reason_and_is_not_asked_again(tmp_path, fail, reason):
    with UKCarbonIntensitySim(_series(time.time() // 1 * 1), interval_s=STEP_S) as sim:
        sim.fail = fail
        with pytest.warns(UserWarning, match="gave no figure"), EnergyMeter(location="GB", cuda_visible_devices="", live=_uk(sim, tmp_path)) as meter:
            pass
        i = meter.record["intensity"]
        assert (i["method"], i["location"], i["fallback"]) == ("dataset", "GB", reason)
        assert meter.record["emissions_g"] == pytest.approx(meter.record["energy_kwh"] * i["g_per_kwh"])
        asked = len(sim.requests)
        sim.fail = None
        again = _uk(sim, tmp_path)  # another task of the host, a moment later: the failure is remembered
        assert again.lookup(time.time(), time.time()) == [] and again.failure == reason
        assert len(sim.requests) == asked


def test_a_429_is_not_repeated_before_its_retry_after(tmp_path):
    with UKCarbonIntensitySim(_series(time.time() // 1 * 1), interval_s=STEP_S) as sim:
        sim.fail, sim.retry_after = "429", "120"
        live = _uk(sim, tmp_path)
        live.lookup(time.time(), time.time())
        state = IntensityCache(tmp_path).read(live.series_name)
        assert state.failure == "uk_carbon_intensity: HTTP 429: rate limited, retry after 120 s"
        assert state.failed_until_s == pytest.approx(time.time() + 120, abs=5)


def test_fifty_processes_starting_together_make_one_request(tmp_path):
    with UKCarbonIntensitySim(_series(time.time() // 1 * 1, 600), interval_s=STEP_S) as sim:
        results = lookups_from_processes(50, LiveSpec("uk_carbon_intensity", sim.url), None, str(tmp_path))
    assert len(results) == 50
    assert [r[3] for r in results] == [None] * 50 and all(found == 1 for _, found, _, _ in results)
    assert sum(r[2] for r in results) == 1 and len(sim.requests) == 1


def test_a_cached_forecast_is_asked_again_once_the_source_may_have_revised_it(tmp_path):
    now = time.time()
    start = now - now % 1800
    with UKCarbonIntensitySim({start: (None, 250), start + 1800: (None, 240)}, now_s=now) as sim:
        live = _uk(sim, tmp_path)
        live.lookup(now, now, now_s=now)
        live.lookup(now, now, now_s=now + 60)  # fresh: from the cache
        assert len(sim.requests) == 1
        sim.series[start] = (230, 250)
        (interval,) = _uk(sim, tmp_path).lookup(now, now, now_s=now + 2400)  # a forecast older than the granularity
        assert len(sim.requests) == 2 and (interval.g_per_kwh, interval.estimated) == (230, False)


def test_electricity_maps_and_watttime_windows(tmp_path):
    now = time.time()
    hour = now - now % 3600
    with ElectricityMapsSim({"DE": {hour - 3600 * k: 380.0 - k for k in range(24)}}, token="tok-1", now_s=now) as em:
        live = LiveIntensity(LiveSpec("electricitymaps", em.url, token="tok-1", emission_factor="direct"), "DE",
                             fallback=resolve_intensity("DE"), cache=IntensityCache(tmp_path))
        with EnergyMeter(location="DE", cuda_visible_devices="", live=live) as meter:
            pass
        i = meter.record["intensity"]
        assert (i["method"], i["zone"], i["emission_factor"], i["signal"]) == ("live", "DE", "direct", "average")
        assert i["g_per_kwh"] == pytest.approx(380.0 * 0.8, abs=1)  # the simulator's direct figure
        assert em.requests[0][1]["emissionFactorType"] == "direct"
    with WattTimeSim({"CAISO_NORTH": [1000.0] * 288}, username="u", password="p", now_s=now) as wt:
        live = LiveIntensity(LiveSpec("watttime", wt.url, username="u", password="p"), "CAISO_NORTH",
                             fallback=resolve_intensity("US-CA"), cache=IntensityCache(tmp_path))
        with EnergyMeter(location="US-CA", cuda_visible_devices="", live=live) as meter:
            pass
        i = meter.record["intensity"]
        assert (i["method"], i["signal"]) == ("live", "marginal")
        assert i["g_per_kwh"] == pytest.approx(453.59237) and all(s["estimated"] for s in i["segments"])  # a forecast, said so


def test_a_watttime_free_plan_outside_caiso_north_says_so_instead_of_inventing_grams(tmp_path):
    with WattTimeSim({"PJM_DC": [800.0] * 12}, username="u", password="p", now_s=time.time()) as wt:
        live = LiveIntensity(LiveSpec("watttime", wt.url, username="u", password="p"), "PJM_DC",
                             fallback=resolve_intensity("US-VA"), cache=IntensityCache(tmp_path))
        with pytest.warns(UserWarning), EnergyMeter(location="US-VA", cuda_visible_devices="", live=live) as meter:
            pass
    i = meter.record["intensity"]
    assert i["method"] == "dataset" and "plan has no forecast for PJM_DC" in i["fallback"]


def test_the_spec_never_shows_its_secrets():
    spec = LiveSpec("electricitymaps", token="s3cret-token", conn_id="em")
    wt = LiveSpec("watttime", username="alice", password="s3cret-pass")
    assert "s3cret" not in repr(spec) + str(spec) + repr(wt) + repr(wt.client()) + repr(spec.client())
    with pytest.raises(ValueError, match="'electricity_maps' is unknown; expected one of electricitymaps, watttime, uk_carbon_intensity"):
        LiveSpec("electricity_maps")


def test_the_async_path_reads_the_same_forecasts_and_fails_the_same_way():
    import asyncio

    from airflow_carbon.core.live import aforecast, fetch
    from airflow_carbon.core.sources.http import SourceError

    now = time.time()
    start = now - now % 1800
    with UKCarbonIntensitySim({start + 1800 * k: 150.0 + k for k in range(48)}) as uk:
        spec = LiveSpec("uk_carbon_intensity", uk.url)
        sync = fetch(spec.client(), "uk_carbon_intensity", None, now)
        assert asyncio.run(aforecast(spec, None, start_s=now)) == sync and len(sync) == 48
        assert asyncio.run(aforecast(spec, "13", start_s=now))[0].g_per_kwh == 150.0  # a region by id
        uk.fail = "429"
        with pytest.raises(SourceError) as err:
            asyncio.run(aforecast(spec, None))
        assert (err.value.reason, err.value.retry_after_s) == ("HTTP 429: rate limited, retry after 7 s", 7.0)
    hour = now - now % 3600
    with ElectricityMapsSim({"DE": {hour + 3600 * k: 300.0 + k for k in range(24)}}, token="tok", now_s=now) as em:
        got = asyncio.run(aforecast(LiveSpec("electricitymaps", em.url, token="tok"), "DE"))
        assert [i.g_per_kwh for i in got[:2]] == [300.0, 301.0] and all(i.estimated for i in got)
        with pytest.raises(SourceError, match="credentials refused \\(credentials from Connection 'em'\\)"):
            asyncio.run(aforecast(LiveSpec("electricitymaps", em.url, token="bad", credentials="Connection 'em'"), "DE"))
    with WattTimeSim({"CAISO_NORTH": [1000.0, 500.0]}, username="u", password="p", now_s=now) as wt:
        got = asyncio.run(aforecast(LiveSpec("watttime", wt.url, username="u", password="p"), "CAISO_NORTH"))
        assert [round(i.g_per_kwh, 3) for i in got] == [453.592, 226.796] and wt.logins == 1


def test_a_checkpoint_carries_the_live_segments_so_far_without_asking_the_source(tmp_path):
    from airflow_carbon import validate_record

    now = time.time()
    first = now - now % STEP_S
    checkpoints: list[dict] = []
    with UKCarbonIntensitySim(_series(first), interval_s=STEP_S) as sim:
        live = _uk(sim, tmp_path)
        with EnergyMeter(location="GB", cuda_visible_devices="", live=live, on_checkpoint=checkpoints.append,
                         checkpoint_interval_s=0.5) as meter:
            deadline = time.monotonic() + 20
            while (not sim.requests or len(checkpoints) < 3) and time.monotonic() < deadline:
                _busy(0.05)
        asked = len(sim.requests)
    assert asked == 1  # the start's lookup; checkpoints and stop() used what it brought
    late = checkpoints[-1]
    validate_record(late)
    assert late["intensity"]["method"] == "live" and late["intensity"]["segments"]
    assert late["emissions_g"] <= meter.record["emissions_g"]
    # the final record's segments are cut at each checkpoint's instant too: its energy there is known
    assert any(not s["energy_estimated"] for s in meter.record["intensity"]["segments"])
