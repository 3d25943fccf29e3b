"""The GB Carbon Intensity client (core/sources) against a local simulator of the API (real HTTP on loopback)."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone

import pytest

from airflow_carbon.core.segments import energy_segments, segment_emissions_g
from airflow_carbon.core.sources.http import SourceError, retry_after_s
from airflow_carbon.core.sources.uk_carbon_intensity import SOURCE, UKCarbonIntensityClient
from carbon_testing.gridsim import UKCarbonIntensitySim

pytestmark = pytest.mark.unit

T0 = 1_764_000_000.0 - (1_764_000_000.0 % 1800)
SERIES = {T0 + n * 1800: g for n, g in enumerate((210, 180, (150, 160), 90))}


@pytest.fixture
def sim():
    with UKCarbonIntensitySim(SERIES, actual_until=T0 + 3 * 1800, now_s=T0 + 60) as s:
        yield s


@pytest.fixture
def client(sim):
    c = UKCarbonIntensityClient(sim.url, read_timeout_s=0.5)
    yield c
    c.close()


def test_the_current_half_hour_nationally_and_by_region_and_postcode(sim, client):
    (now,) = client.current()
    assert (now.start_s, now.end_s, now.g_per_kwh, now.source, now.estimated) == (T0, T0 + 1800, 210.0, SOURCE, False)
    assert client.current(13)[0].start_s == T0 and client.current("rg10")[0].g_per_kwh == 210.0
    assert sim.requests == ["/intensity", "/regional/regionid/13", "/regional/postcode/RG10"]


def test_the_forecast_uses_actuals_where_known_and_says_which_are_forecasts(sim, client):
    series = client.forecast(datetime.fromtimestamp(T0, timezone.utc))
    assert [(i.g_per_kwh, i.estimated) for i in series] == [(210.0, False), (180.0, False), (150.0, False), (90.0, True)]
    assert sim.requests == [f"/intensity/{datetime.fromtimestamp(T0, timezone.utc):%Y-%m-%dT%H:%MZ}/fw24h"]
    regional = client.forecast(datetime.fromtimestamp(T0, timezone.utc), region=16)
    assert all(i.estimated for i in regional)  # regional figures are forecasts only in the API


def test_a_try_across_two_half_hours_gets_each_ones_grams(client):
    series = client.forecast(datetime.fromtimestamp(T0, timezone.utc))
    points = [(T0 + 1500, 0.0), (T0 + 2100, 3.6e6)]  # 1 kWh over 10 min, 5 min in each half hour
    segments = energy_segments(points, series, fallback_g_per_kwh=250.0, fallback_source="bundled:GB")
    assert [s["g_per_kwh"] for s in segments] == [210.0, 180.0]
    assert segment_emissions_g(segments, 1.0) == pytest.approx(0.5 * 210 + 0.5 * 180)


@pytest.mark.parametrize(("fail", "reason"), [
    ("500", "HTTP 500: Internal Server Error"),
    ("429", "HTTP 429: rate limited, retry after 7 s"),
    ("malformed", "malformed JSON in an HTTP 200 response"),
    ("slow", "timed out (read timeout)"),
    ("drop", "unreachable (RemoteProtocolError)"),
])
def test_every_failure_is_a_source_error_with_a_reason(sim, client, fail, reason):
    sim.fail = fail
    with pytest.raises(SourceError) as info:
        client.current()
    assert (info.value.source, info.value.reason) == (SOURCE, reason)
    assert str(info.value) == f"{SOURCE}: {reason}"
    if fail == "429":
        assert info.value.retry_after_s == 7.0
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.reason, again.retry_after_s) == (info.value.reason, info.value.retry_after_s)


def test_an_unknown_region_is_the_apis_400_and_a_bad_one_is_refused_before_any_request(sim, client):
    with pytest.raises(SourceError, match="HTTP 400: Please enter a valid region ID"):
        client._intervals(client._get("/regional/regionid/99"), regional=True)
    with pytest.raises(ValueError, match=r"GB region id 18 is invalid; expected 1-17"):
        client.current(18)
    with pytest.raises(ValueError, match=r"GB region 'London' is invalid; expected a region id \(1-17\) or an outward postcode"):
        client.current("London")
    assert sim.requests == ["/regional/regionid/99"]


def test_no_server_and_an_empty_series_are_source_errors():
    with UKCarbonIntensitySim({}, now_s=T0) as empty:
        with pytest.raises(SourceError, match="no figures in the response"):
            UKCarbonIntensityClient(empty.url).current()
        gone = empty.url
    with pytest.raises(SourceError, match=r"unreachable \(ConnectError\)"):
        UKCarbonIntensityClient(gone, connect_timeout_s=0.5).current()


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_s("120") == 120.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2026 07:28:00 GMT", now_s=datetime(2026, 10, 21, 7, 27, tzinfo=timezone.utc).timestamp()) == 60.0
