"""The Electricity Maps v3 client (core/sources) against a local simulator of the API (real HTTP on loopback)."""

from __future__ import annotations

import tempfile

import pytest

from airflow_carbon.core.sources.electricitymaps import SOURCE, ElectricityMapsClient
from airflow_carbon.core.sources.http import SourceError
from carbon_testing.gridsim import ElectricityMapsSim

pytestmark = pytest.mark.unit

TOKEN = "em-token-s3cret"
HOUR = 1_764_000_000.0 - (1_764_000_000.0 % 3600)
SERIES = {"DE": {HOUR - 3600: 420.0, HOUR: 380.0, HOUR + 3600: 300.0, HOUR + 7200: 250.0}}


@pytest.fixture
def sim():
    with ElectricityMapsSim(SERIES, token=TOKEN, now_s=HOUR + 600) as s:
        yield s


def test_latest_history_and_forecast_by_zone_with_the_token_header(sim):
    client = ElectricityMapsClient(TOKEN, sim.url)
    (latest,) = client.latest("DE")
    assert (latest.start_s, latest.end_s, latest.g_per_kwh, latest.source, latest.estimated) == (HOUR, HOUR + 3600, 380.0, "electricitymaps:DE", False)
    assert [i.g_per_kwh for i in client.history("DE")] == [420.0, 380.0]
    forecast = client.forecast("DE")
    assert [i.g_per_kwh for i in forecast] == [380.0, 300.0, 250.0] and all(i.estimated for i in forecast)
    assert [q["emissionFactorType"] for _, q in sim.requests] == ["lifecycle"] * 3 and {q["zone"] for _, q in sim.requests} == {"DE"}


def test_direct_emission_factors_are_asked_for_by_name(sim):
    (latest,) = ElectricityMapsClient(TOKEN, sim.url, emission_factor="direct").latest("DE")
    assert latest.g_per_kwh == round(380.0 * 0.8) and sim.requests[-1][1]["emissionFactorType"] == "direct"
    with pytest.raises(ValueError, match=r"emission_factor='marginal' is invalid; expected one of lifecycle, direct"):
        ElectricityMapsClient(TOKEN, sim.url, emission_factor="marginal")


def test_a_refused_token_names_the_connection_never_the_token(sim):
    client = ElectricityMapsClient("wrong-token", sim.url, credentials="Connection electricitymaps_default")
    with pytest.raises(SourceError) as info:
        client.latest("DE")
    assert info.value.reason == "HTTP 401: credentials refused (credentials from Connection electricitymaps_default)"
    assert "wrong-token" not in str(info.value) and "wrong-token" not in repr(client)
    with pytest.raises(ValueError, match="an Electricity Maps token is needed"):
        ElectricityMapsClient("", sim.url)


def test_an_unknown_zone_is_the_apis_400_with_its_message(sim):
    with pytest.raises(SourceError, match=r"electricitymaps: HTTP 400: Zone 'XX' does not exist\."):
        ElectricityMapsClient(TOKEN, sim.url).latest("XX")


@pytest.mark.parametrize(("fail", "reason"), [
    ("500", "HTTP 500: Internal Server Error"), ("429", "HTTP 429: rate limited, retry after 7 s"),
    ("malformed", "malformed JSON in an HTTP 200 response"), ("slow", "timed out (read timeout)"),
])
def test_every_failure_is_a_source_error_with_a_reason(sim, fail, reason):
    sim.fail = fail
    with pytest.raises(SourceError) as info:
        ElectricityMapsClient(TOKEN, sim.url, read_timeout_s=0.5).latest("DE")
    assert (info.value.source, info.value.reason) == (SOURCE, reason)


def test_forecast_points_last_until_the_next_point_at_any_spacing():
    # a forecast a minute apart (what a finer-grained account, or a test, gets): each point lasts until the
    # next one, the last as long as the one before it; a cached forecast is one request per host
    from airflow_carbon.core.intensity_cache import IntensityCache
    from airflow_carbon.core.live import LiveSpec, forecast

    now = 1_767_225_600.0
    points = {now + 60 * k: 300.0 - 10 * k for k in range(5)}
    with ElectricityMapsSim({"DE": {now: 300.0}}, token=TOKEN, now_s=now, forecasts={"DE": points}) as sim:
        intervals = ElectricityMapsClient(TOKEN, sim.url).forecast("DE")
        assert [(i.start_s - now, i.end_s - now, i.g_per_kwh) for i in intervals] == [
            (0, 60, 300), (60, 120, 290), (120, 180, 280), (180, 240, 270), (240, 300, 260)]
        assert all(i.estimated for i in intervals)
        spec = LiveSpec("electricitymaps", sim.url, token=TOKEN)
        with tempfile.TemporaryDirectory() as cache_dir:
            cache = IntensityCache(cache_dir)
            first = forecast(spec, "DE", cache=cache, now_s=now + 30)
            again = forecast(spec, "DE", cache=cache, now_s=now + 90)
        assert [i.g_per_kwh for i in first] == [300, 290, 280, 270, 260]
        assert [i.g_per_kwh for i in again] == [290, 280, 270, 260]  # what is still ahead at now + 90 s
        assert [p for p, _ in sim.requests].count("/v3/carbon-intensity/forecast") == 2  # one by the client, one by forecast()
