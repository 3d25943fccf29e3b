"""The record's shift (airflow_carbon/start_planning.py): the expected duration a plan uses, the start and wait
a resumed try records, and the avoided grams, whatever their sign."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_carbon.core.units import utc_iso
from airflow_carbon.start_planning import DEFAULT_EXPECTED_DURATION_S, expected_duration, started, with_avoided

pytestmark = pytest.mark.unit

T0 = 1_767_225_600.0


def _settings(expected: float | None = None) -> SimpleNamespace:
    return SimpleNamespace(expected_duration=expected)


def test_the_expected_duration_is_the_option_else_the_median_of_successful_tries_else_an_hour():
    tries = [{"status": "success", "duration_s": d} for d in (100.0, 300.0, 200.0)]
    tries += [{"status": "failed", "duration_s": 5.0}, {"status": "interrupted", "duration_s": 9000.0}]
    assert expected_duration(_settings(1800.0), tries) == (1800.0, "expected_duration")
    assert expected_duration(_settings(), tries) == (200.0, "the median of 3 successful tries on record")
    assert expected_duration(_settings(), tries[3:]) == (DEFAULT_EXPECTED_DURATION_S,
                                                        "1 h: no expected_duration and no successful try on record")


def _shift(**over):
    return {"requested_at": utc_iso(T0), "planned_start": utc_iso(T0 + 600), "expected_duration_s": 3600.0,
            "start_within_s": 3600.0, "forecast_g_per_kwh_now": 300.0, "forecast_g_per_kwh_planned": 200.0,
            "reason": "waited 600 s for a forecast 200 gCO2e/kWh instead of 300 (33.3 % less)", **over}


def test_a_resumed_try_records_its_wait_and_says_when_it_started_late():
    on_time = started(_shift(), started_s=T0 + 601, deferred=True)
    assert on_time["waited_s"] == 601 and on_time["started_at"] == utc_iso(T0 + 601) and on_time["deferred"] is True
    assert on_time["reason"] == _shift()["reason"]
    late = started(_shift(), started_s=T0 + 3600 + 400, deferred=True)
    assert late["reason"].endswith("; it started 400 s past start_within (the triggerer or the worker was late)")


def _record(method: str = "live", energy_kwh: float = 0.5, emissions_g: float = 110.0) -> dict:
    return {"energy_kwh": energy_kwh, "pue": 1.2, "emissions_g": emissions_g, "intensity": {"method": method}}


def test_avoided_grams_are_the_energy_at_the_forecast_of_starting_when_asked_minus_the_emissions():
    shift = started(_shift(), started_s=T0 + 600, deferred=True)
    out = with_avoided(shift, _record())
    assert out["avoided_g"] == pytest.approx(0.5 * 300 * 1.2 - 110)  # 70 g
    assert "0.5 kWh x 300 gCO2e/kWh" in out["avoided_basis"]
    worse = with_avoided(shift, _record(emissions_g=250.0))  # the grid did not follow the forecast
    assert worse["avoided_g"] == pytest.approx(180 - 250)  # reported as it is, negative


def test_avoided_grams_are_zero_without_a_wait_and_unknown_without_figures():
    at_once = started(_shift(planned_start=utc_iso(T0)), started_s=T0, deferred=False)
    assert with_avoided(at_once, _record())["avoided_g"] == 0.0
    waited = started(_shift(), started_s=T0 + 600, deferred=True)
    no_forecast = with_avoided({**waited, "forecast_g_per_kwh_now": None}, _record())
    assert no_forecast["avoided_g"] is None and "no forecast" in no_forecast["avoided_basis"]
    bundled = with_avoided(waited, _record(method="dataset"))
    assert bundled["avoided_g"] is None and "no live figure" in bundled["avoided_basis"]
