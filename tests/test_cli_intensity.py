"""`airflow-carbon intensity` as a user runs it: a real child process, the real CLI entry point, and the
local simulators of the live sources (real HTTP on loopback). Secrets come from the environment (or a
Connection URI) and never appear in what the command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_carbon.core.intensity import resolve_intensity
from carbon_testing.gridsim import ElectricityMapsSim, UKCarbonIntensitySim, WattTimeSim

# No module pytestmark: the --conn-uri test runs Airflow's parser (airflow tier), the others are unit.
unit = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "airflow_carbon", "intensity"]
EM_TOKEN = "em-s3cret-token-1234"
WT_PASSWORD = "wt-s3cret-password"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT, timeout=60)


def _half_hour(now: float) -> float:
    return now - now % 1800


def _uk_sim(now: float) -> UKCarbonIntensitySim:
    """GB figures 200, 201, ... g/kWh from the half hour before ``now``'s; actual up to ``now``'s half hour."""
    start = _half_hour(now)
    return UKCarbonIntensitySim({start + 1800 * k: 200.0 + k for k in range(-1, 60)}, actual_until=start + 1800, now_s=now)


def _em_sim(now: float, token: str = EM_TOKEN) -> ElectricityMapsSim:
    """Electricity Maps DE: 300 g/kWh this hour, +1 per hour ahead, -1 per hour back."""
    hour = now - now % 3600
    return ElectricityMapsSim({"DE": {hour + 3600 * k: 300.0 + k for k in range(-24, 24)}}, token=token, now_s=now)


def _no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


# -- the bundled table -------------------------------------------------------------------------------
@unit
def test_without_a_source_prints_the_bundled_figure_and_its_provenance():
    result = _run("France")
    assert result.returncode == 0, result.stderr
    assert "France (FR)" in result.stdout
    assert "bundled table" in result.stdout
    assert "56.0 gCO2e/kWh (lifecycle)" in result.stdout
    assert "Our World in Data" in result.stdout and "2023" in result.stdout and "CC-BY-4.0" in result.stdout


@unit
def test_bundled_json_is_the_table_entry():
    result = _run("US-CA", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = resolve_intensity("US-CA")
    assert report == {"location": "US-CA", "name": "California, USA", "method": "bundled table",
                      "g_per_kwh": expected.g_per_kwh, "bundled": expected.to_dict()}
    assert report["bundled"]["emission_factor"] == "direct"


@unit
def test_unknown_location_exits_2_with_suggestions():
    result = _run("Frnace")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Did you mean: France (FR)" in result.stderr


# -- GB Carbon Intensity API -------------------------------------------------------------------------
@unit
def test_uk_current_and_24h_forecast():
    now = time.time()
    with _uk_sim(now) as sim:
        result = _run("GB", "--source", "uk_carbon_intensity", "--url", sim.url, "--forecast")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "method            live" in out
    assert "GB Carbon Intensity API (NESO)" in out and sim.url in out
    assert "national (Great Britain)" in out
    assert "average (the grid mix)" in out
    assert "emission factor   direct" in out
    assert "200.0 gCO2e/kWh" in out and "not estimated [the current half hour]" in out
    assert "237.6 gCO2e/kWh (lifecycle), United Kingdom" in out  # the bundled figure a task falls back to
    assert "forecast (48 interval(s))" in out  # 24 h of half hours
    assert sim.requests[0] == "/intensity"
    assert sim.requests[1].startswith("/intensity/") and sim.requests[1].endswith("/fw24h")


@unit
def test_uk_regional_zone_and_json_forecast():
    now = time.time()
    with _uk_sim(now) as sim:
        result = _run("GB", "--source", "uk_carbon_intensity", "--url", sim.url, "--zone", "13", "--forecast", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    live = report["live"]
    assert report["method"] == "live" and report["g_per_kwh"] == 200.0
    assert live["zone"] == "13" and live["signal"] == "average" and live["emission_factor"] == "direct"
    assert live["current"]["estimated"] is True  # regional figures are forecasts only
    assert sim.requests[0] == "/regional/regionid/13"
    assert len(live["forecast"]) == 48
    assert all(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - now % 1800)) <= row["start"] for row in live["forecast"])


@unit
def test_a_failing_source_exits_1_with_the_reason_and_the_fallback_figure():
    with _uk_sim(time.time()) as sim:
        sim.fail = "500"
        result = _run("GB", "--source", "uk_carbon_intensity", "--url", sim.url)
        sim.fail = "malformed"
        malformed = _run("GB", "--source", "uk_carbon_intensity", "--url", sim.url, "--json")
    assert result.returncode == 1
    assert "source failed     uk_carbon_intensity: HTTP 500: Internal Server Error" in result.stdout
    assert "a task would use  237.6 gCO2e/kWh (lifecycle), United Kingdom" in result.stdout
    assert malformed.returncode == 1
    report = json.loads(malformed.stdout)
    assert report["method"] == "fallback" and report["g_per_kwh"] == resolve_intensity("GB").g_per_kwh
    assert report["fallback"].startswith("uk_carbon_intensity: malformed JSON")
    assert report["live"]["current"] is None and report["live"]["error"] == report["fallback"]


@unit
def test_unreachable_source_falls_back():
    with _uk_sim(time.time()) as sim:
        url = sim.url
    result = _run("GB", "--source", "uk_carbon_intensity", "--url", url)  # nobody listens there now
    assert result.returncode == 1
    assert "uk_carbon_intensity: unreachable" in result.stdout


@unit
def test_zone_errors_exit_2():
    outside = _run("FR", "--source", "uk_carbon_intensity", "--url", "http://127.0.0.1:9")
    assert outside.returncode == 2 and "covers Great Britain only" in outside.stderr and "--zone" in outside.stderr
    bad_region = _run("GB", "--source", "uk_carbon_intensity", "--url", "http://127.0.0.1:9", "--zone", "99")
    assert bad_region.returncode == 2 and "GB region id 99 is invalid" in bad_region.stderr
    bad_text = _run("GB", "--source", "uk_carbon_intensity", "--zone", "no spaces")
    assert bad_text.returncode == 2 and "intensity_zone" in bad_text.stderr


# -- Electricity Maps ----------------------------------------------------------------------------------
@unit
def test_electricitymaps_token_from_the_environment_never_printed():
    now = time.time()
    with _em_sim(now) as sim:
        result = _run("Germany", "--source", "electricitymaps", "--url", sim.url, "--token-env", "EM_TOKEN", "--forecast",
                      env={"EM_TOKEN": EM_TOKEN})
        direct = _run("DE", "--source", "electricitymaps", "--url", sim.url, "--token-env", "EM_TOKEN",
                      "--emission-factor", "direct", "--json", env={"EM_TOKEN": EM_TOKEN})
    assert result.returncode == 0, result.stderr
    assert "Electricity Maps at " + sim.url in result.stdout
    assert "zone              DE" in result.stdout
    assert "emission factor   lifecycle" in result.stdout
    assert "300.0 gCO2e/kWh" in result.stdout and "[the latest hour]" in result.stdout
    assert "forecast (24 interval(s))" in result.stdout
    paths = [path for path, _ in sim.requests]  # the first run's two requests, then the second's one
    assert paths == ["/v3/carbon-intensity/latest", "/v3/carbon-intensity/forecast", "/v3/carbon-intensity/latest"]
    assert all(query["zone"] == "DE" for _, query in sim.requests)
    report = json.loads(direct.stdout)
    assert report["live"]["emission_factor"] == "direct" and report["g_per_kwh"] == 240.0  # the simulator's direct = 0.8 x lifecycle
    _no_secret(result, EM_TOKEN)
    _no_secret(direct, EM_TOKEN)


@unit
def test_refused_token_names_the_variable_not_the_token():
    with _em_sim(time.time()) as sim:
        result = _run("DE", "--source", "electricitymaps", "--url", sim.url, "--token-env", "EM_TOKEN",
                      env={"EM_TOKEN": "wrong-" + EM_TOKEN})
    assert result.returncode == 1
    assert "electricitymaps: HTTP 401: credentials refused (credentials from environment variable EM_TOKEN)" in result.stdout
    assert "a task would use  380.9 gCO2e/kWh (lifecycle), Germany" in result.stdout
    _no_secret(result, EM_TOKEN)


@unit
@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "electricitymaps", "--token-env", "CARBON_TEST_UNSET_TOKEN"],
         "environment variable CARBON_TEST_UNSET_TOKEN (named by --token-env) is not set"),
        (["--source", "electricitymaps"], "--source electricitymaps needs --token-env VAR"),
        (["--source", "watttime", "--login-env", "CARBON_TEST_LOGIN", "--password-env", "CARBON_TEST_UNSET_PASSWORD"],
         "environment variable CARBON_TEST_UNSET_PASSWORD (named by --password-env) is not set"),
        (["--source", "watttime", "--login-env", "CARBON_TEST_LOGIN"], "--source watttime needs --login-env VAR and --password-env VAR"),
        (["--source", "uk_carbon_intensity", "--token-env", "CARBON_TEST_LOGIN"], "--token-env does not go with --source uk_carbon_intensity"),
        (["--url", "http://127.0.0.1:9"], "--url needs --source"),
        (["--forecast"], "--zone and --forecast need a live source"),
    ],
)
def test_missing_environment_variables_and_misplaced_flags_exit_2(args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_TEST_UNSET")} | {"CARBON_TEST_LOGIN": "ada"}
    result = subprocess.run([*CLI, "DE", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "usage: airflow-carbon intensity" in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


@unit
def test_a_token_is_not_accepted_as_an_argument_nor_echoed():
    abbreviated = _run("DE", "--source", "electricitymaps", "--token", EM_TOKEN)  # no prefix matching of --token-env
    assert abbreviated.returncode == 2 and "unrecognized arguments: --token (values not printed)" in abbreviated.stderr
    _no_secret(abbreviated, EM_TOKEN)
    mistaken = _run("DE", "--source", "electricitymaps", "--token-env", EM_TOKEN)  # the value instead of the name
    assert mistaken.returncode == 2 and "takes the name of an environment variable" in mistaken.stderr
    _no_secret(mistaken, EM_TOKEN)


# -- WattTime ---------------------------------------------------------------------------------------------
@unit
def test_watttime_forecast_first_point_and_the_free_plan_signal_index():
    now = time.time()
    env = {"WT_LOGIN": "ada", "WT_PASSWORD": WT_PASSWORD}
    flags = ["--login-env", "WT_LOGIN", "--password-env", "WT_PASSWORD"]
    with WattTimeSim({"CAISO_NORTH": [1000.0] * 12, "PJM_DC": [800.0, 700.0, 900.0]}, username="ada", password=WT_PASSWORD,
                     now_s=now) as sim:
        caiso = _run("US-CA", "--source", "watttime", "--url", sim.url, *flags, "--forecast", env=env)
        pjm = _run("US-VA", "--source", "watttime", "--url", sim.url, *flags, "--json", env=env)
    assert caiso.returncode == 0, caiso.stderr
    assert "zone              CAISO_NORTH" in caiso.stdout
    assert "marginal" in caiso.stdout
    assert "453.6 gCO2e/kWh" in caiso.stdout  # 1000 lbs/MWh x 0.45359237
    assert "the forecast's first point" in caiso.stdout
    assert "forecast (12 interval(s))" in caiso.stdout
    assert pjm.returncode == 1
    report = json.loads(pjm.stdout)
    assert report["method"] == "fallback" and report["g_per_kwh"] == resolve_intensity("US-VA").g_per_kwh
    assert report["fallback"].startswith("watttime: HTTP 403: this account's plan has no forecast for PJM_DC")
    index = report["live"]["signal_index"]
    assert index["region"] == "PJM_DC" and 0 <= index["percentile"] <= 100
    assert "not gCO2e/kWh" in index["unit"]
    _no_secret(caiso, WT_PASSWORD)
    _no_secret(pjm, WT_PASSWORD)


# -- an Airflow Connection URI ---------------------------------------------------------------------------
@pytest.mark.airflow
def test_conn_uri_is_read_by_airflow_and_its_token_never_printed():
    now = time.time()
    with _em_sim(now) as em, _uk_sim(now) as uk:
        host = em.url.removeprefix("http://")
        em_result = _run("DE", "--conn-uri", f"electricitymaps://:{EM_TOKEN}@{host}/http?emission_factor=direct", "--json")
        uk_result = _run("GB", "--conn-uri", "uk-carbon-intensity://" + uk.url.removeprefix("http://") + "/http")
        refused = _run("DE", "--conn-uri", f"electricitymaps://:wrong-{EM_TOKEN}@{host}/http")
        underscore = _run("GB", "--conn-uri", "uk_carbon_intensity://" + uk.url)
        bad = _run("DE", "--conn-uri", f"electricitymaps://:{EM_TOKEN}@http://h://x")
    assert em_result.returncode == 0, em_result.stderr
    report = json.loads(em_result.stdout)  # nothing but the JSON on stdout
    live = report["live"]
    assert live["conn_id"] == "cli" and live["base_url"] == em.url and live["emission_factor"] == "direct"
    assert report["g_per_kwh"] == 240.0
    assert uk_result.returncode == 0, uk_result.stderr
    assert f"at {uk.url} (Connection 'cli')" in uk_result.stdout
    assert refused.returncode == 1
    assert "credentials refused (credentials from Connection 'cli')" in refused.stdout
    assert underscore.returncode == 2 and "uk-carbon-intensity://" in underscore.stderr
    assert bad.returncode == 2 and "is not a Connection URI" in bad.stderr
    for result in (em_result, refused, bad):
        _no_secret(result, EM_TOKEN)


@unit
def test_a_secret_echoed_by_the_source_is_scrubbed():
    with _em_sim(time.time()) as sim:  # the simulator's 400 quotes the zone: here the zone is the token itself
        result = _run("DE", "--source", "electricitymaps", "--url", sim.url, "--token-env", "EM_TOKEN", "--zone", EM_TOKEN,
                      env={"EM_TOKEN": EM_TOKEN})
    assert result.returncode == 1
    assert "electricitymaps: HTTP 400: Zone '***' does not exist." in result.stdout
    _no_secret(result, EM_TOKEN)
