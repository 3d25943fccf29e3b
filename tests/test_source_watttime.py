"""The WattTime v3 client (core/sources) against a local simulator of the API (real HTTP on loopback)."""

from __future__ import annotations

import pytest

from airflow_carbon.core.sources.http import SourceError
from airflow_carbon.core.sources.watttime import G_PER_KWH_PER_LBS_PER_MWH, SOURCE, SignalIndex, WattTimeClient
from carbon_testing.gridsim import WattTimeSim

pytestmark = pytest.mark.unit

NOW = 1_764_000_000.0 - (1_764_000_000.0 % 300)
MOER = {"CAISO_NORTH": [900.0, 800.0, 1000.0], "PJM_DC": [1200.0, 1100.0]}


@pytest.fixture
def sim():
    with WattTimeSim(MOER, username="ada", password="pw-s3cret", now_s=NOW + 20) as s:
        yield s


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_subscribed_region_gets_its_5_minute_moer_in_g_per_kwh(sim):
    series = WattTimeClient("ada", "pw-s3cret", sim.url).forecast("CAISO_NORTH")
    assert [(i.start_s, i.end_s) for i in series] == [(NOW + n * 300, NOW + (n + 1) * 300) for n in range(3)]
    assert [i.g_per_kwh for i in series] == pytest.approx([v * 0.45359237 for v in MOER["CAISO_NORTH"]])
    assert pytest.approx(453.59237 / 1000) == G_PER_KWH_PER_LBS_PER_MWH
    assert all(i.estimated and i.source == "watttime:CAISO_NORTH" for i in series)
    assert sim.requests == ["/login", "/v3/forecast"]


def test_the_token_is_reused_renewed_before_it_expires_and_after_a_401(sim):
    clock = Clock()
    client = WattTimeClient("ada", "pw-s3cret", sim.url, clock=clock)
    client.forecast("CAISO_NORTH")
    client.forecast("CAISO_NORTH")
    assert sim.logins == 1
    clock.t = 29 * 60 + 1  # within a minute of the 30-minute lifetime: renewed first
    client.forecast("CAISO_NORTH")
    assert sim.logins == 2
    sim.expire_tokens()  # revoked early: one 401, one new login, the request again
    client.forecast("CAISO_NORTH")
    assert sim.logins == 3 and sim.requests[-3:] == ["/v3/forecast", "/login", "/v3/forecast"]


def test_a_free_account_elsewhere_gets_the_percentile_and_no_invented_grams(sim):
    client = WattTimeClient("ada", "pw-s3cret", sim.url)
    with pytest.raises(SourceError, match=r"HTTP 403: this account's plan has no forecast for PJM_DC \(a free account gets CAISO_NORTH"):
        client.forecast("PJM_DC")
    assert client.signal_index("PJM_DC") == SignalIndex("PJM_DC", 100.0, NOW)


def test_a_refused_login_names_the_connection_never_the_password(sim):
    client = WattTimeClient("ada", "wrong-pw", sim.url, credentials="Connection watttime_default")
    with pytest.raises(SourceError) as info:
        client.forecast("CAISO_NORTH")
    assert info.value.reason == "HTTP 403: credentials refused (credentials from Connection watttime_default)"
    assert "wrong-pw" not in str(info.value) + repr(client)
    with pytest.raises(ValueError, match="WattTime needs a login and a password"):
        WattTimeClient("ada", "", sim.url)


def test_an_unknown_region_and_a_failing_api_are_source_errors(sim):
    client = WattTimeClient("ada", "pw-s3cret", sim.url, read_timeout_s=0.5)
    with pytest.raises(SourceError, match="watttime: HTTP 400: Invalid region: NOWHERE"):
        client.forecast("NOWHERE")
    sim.fail = "429"
    with pytest.raises(SourceError) as info:
        client.forecast("CAISO_NORTH")
    assert (info.value.source, info.value.retry_after_s) == (SOURCE, 7.0)
