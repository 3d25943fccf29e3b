"""Figures and charts of the UI, without a server: units picked for readability, labels escaped."""

from __future__ import annotations

import re

import pytest

from airflow_carbon.ui import charts
from airflow_carbon.ui import format as fmt

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("grams, shown", [
    (0.0, "0 g CO2e"), (0.000389, "0.389 mg CO2e"), (0.5, "500 mg CO2e"), (12.34, "12.3 g CO2e"),
    (1234.0, "1.23 kg CO2e"), (2.5e6, "2.5 t CO2e"), (None, "missing"),
])
def test_emissions_pick_a_readable_unit(grams, shown):
    assert fmt.emissions(grams) == shown


@pytest.mark.parametrize("kwh, shown", [
    (1.35e-5, "48.6 J"), (0.0069, "6.9 Wh"), (3.2, "3.2 kWh"), (4200.0, "4.2 MWh"), (None, "missing"),
])
def test_energy_picks_a_readable_unit(kwh, shown):
    assert fmt.energy(kwh) == shown


def test_power_and_duration_say_their_units():
    assert fmt.power(150.0) == "150 W" and fmt.power(1500.0) == "1.5 kW" and fmt.power(None) == "n/a"
    assert fmt.duration(4.06) == "4.06 s" and fmt.duration(725) == "12 min 5 s" and fmt.duration(11040) == "3 h 4 min"


def test_bar_heights_follow_the_values_and_labels_are_escaped():
    svg = charts.bar_chart([("<b>a</b>", 1.0), ("b", 3.0)], fmt.emissions, title="t <x>", links=[None, "/r?a=1&b=2"])
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([0-9.]+)"', svg)]
    assert heights[1] == pytest.approx(3 * heights[0], rel=0.01)
    assert "<b>a</b>" not in svg and "&lt;b&gt;a&lt;/b&gt;" in svg and "t &lt;x&gt;" in svg
    assert 'href="/r?a=1&amp;b=2"' in svg
    assert charts.bar_chart([], fmt.emissions, title="none") == ""


def test_stacked_bars_stack_each_component():
    svg = charts.stacked_bars([("train[0]", {"gpu": 3.0, "cpu": 1.0, "ram": 0.0})], [("gpu", "GPU"), ("cpu", "CPU"), ("ram", "RAM")],
                              fmt.energy, title="energy")
    widths = {k: float(w) for k, w in re.findall(r'class="seg seg-(\w+)" x="[0-9.]+" y="\d+" width="([0-9.]+)" height="22"', svg)}
    assert set(widths) == {"gpu", "cpu"}  # a zero component draws nothing
    assert widths["gpu"] == pytest.approx(3 * widths["cpu"], rel=0.01)


BUNDLED_FR = {"g_per_kwh": 56.039, "location": "FR", "name": "France", "source": "Our World in Data (Ember)", "year": 2023,
              "license": "CC-BY-4.0", "method": "dataset", "emission_factor": "lifecycle"}


@pytest.mark.parametrize("intensity, shown", [
    ({"method": "live", "live_source": "electricitymaps", "zone": "FR", "signal": "average", "emission_factor": "lifecycle"},
     "live: Electricity Maps, zone FR (average, lifecycle)"),
    ({"method": "live", "live_source": "watttime", "zone": "CAISO_NORTH", "signal": "marginal", "emission_factor": "direct"},
     "live: WattTime, CAISO_NORTH (marginal)"),
    ({"method": "live", "live_source": "uk_carbon_intensity", "zone": None, "signal": "average", "emission_factor": "direct"},
     "live: GB Carbon Intensity (operational)"),
    ({"method": "live", "live_source": "uk_carbon_intensity", "zone": "13"}, "live: GB Carbon Intensity, region 13 (operational)"),
    ({"method": "live", "live_source": "uk_carbon_intensity", "zone": "RG10"}, "live: GB Carbon Intensity, postcode RG10 (operational)"),
    (BUNDLED_FR, "bundled: France (Our World in Data (Ember), 2023)"),
    ({**BUNDLED_FR, "live_source": "watttime", "zone": "FR", "fallback": "watttime: unreachable"}, "bundled: France (Our World in Data (Ember), 2023)"),
    ({**BUNDLED_FR, "source": "user-provided", "year": None, "method": "explicit", "name": "User-provided grid intensity"},
     "explicit: User-provided grid intensity"),
    ({**BUNDLED_FR, "location": None, "name": "World", "method": "world-average"}, "world average (Our World in Data (Ember), 2023)"),
])
def test_a_try_s_intensity_source_in_a_line(intensity, shown):
    assert fmt.intensity_source(intensity) == shown


def test_the_fallback_says_how_much_of_the_try_it_covered():
    assert fmt.fallback_extent(BUNDLED_FR) is None
    assert fmt.fallback_extent({**BUNDLED_FR, "fallback": "watttime: HTTP 500"}) == "all of this try"
    assert fmt.fallback_extent({"method": "live", "fallback": "x"}).startswith("part of this try")
    assert fmt.utc_time("2026-12-03T10:30:00.000Z") == "2026-12-03 10:30:00" and fmt.utc_time(None) == ""


def _steps(svg: str) -> list[tuple[bool, float, float, float]]:
    return [(bool(dashed), float(x1), float(x2), float(y)) for dashed, x1, x2, y in
            re.findall(r'<line class="step( estimated)?" x1="([0-9.]+)" x2="([0-9.]+)" y1="([0-9.]+)"', svg)]


def test_the_step_chart_draws_a_level_per_step_over_time():
    t = charts.instant_s("2026-12-03T10:00:00.000Z")
    assert t == 1796292000.0 and charts.instant_s("not a time") is None
    steps = [charts.Step(t, t + 1800, 200.0, "a", False, "a1 <b>"), charts.Step(t + 1800, t + 3600, 100.0, "a", True, "a2"),
             charts.Step(t + 600, t + 1200, 400.0, "b", False, "b1")]
    svg = charts.step_chart(steps, fmt.intensity, title="g/kWh <x>", dashed_label="estimated")
    drawn = _steps(svg)
    assert len(drawn) == 3 and [d[0] for d in drawn] == [False, True, False]  # the legend's samples are not steps
    (_, a1, a1_end, a1_y), (_, a2, _, a2_y), (_, b1, b1_end, b1_y) = drawn
    assert a1_end == pytest.approx(a2) and a1_end - a1 == pytest.approx(3 * (b1_end - b1), rel=0.01)  # x: time
    assert b1 == pytest.approx(a1 + (a1_end - a1) / 3, rel=0.01)
    baseline = float(re.search(r'class="baseline" x1="\d+" x2="\d+" y1="([0-9.]+)"', svg)[1])
    assert baseline - b1_y == pytest.approx(2 * (baseline - a1_y), rel=0.01) and baseline - a1_y == pytest.approx(2 * (baseline - a2_y), rel=0.01)
    assert svg.count('<line class="riser') == 1  # a's two steps joined; b stands alone
    assert re.findall(r'class="axis track"[^>]*>([^<]+)<', svg) == ["a", "b"]  # each track named at its start
    assert "a1 &lt;b&gt;" in svg and "<b>" not in svg and "g/kWh &lt;x&gt;" in svg
    assert re.findall(r'text-anchor="middle">([^<]+)</text>', svg) == ["10:00", "10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]
    assert charts.step_chart([], fmt.intensity, title="none", dashed_label="estimated") == ""


def test_the_time_axis_names_the_day_where_one_starts():
    t = charts.instant_s("2026-12-03T22:00:00Z")
    labels = [label for _, label in charts._time_ticks(t, t + 4 * 3600)]
    assert labels == ["22:00", "23:00", "12-04 00:00", "01:00", "02:00"]
    assert [label for _, label in charts._time_ticks(t, t + 20)] == ["22:00:00", "22:00:05", "22:00:10", "22:00:15", "22:00:20"]


@pytest.mark.parametrize("grams, shown", [
    (1.5e-3, "1.5 mg CO2e"), (0.0, "0 g CO2e"), (-0.3, "-300 mg CO2e (the wait cost more)"), (-2.5, "-2.5 g CO2e (the wait cost more)"),
    (None, "unknown"),
])
def test_avoided_grams_keep_their_sign_and_unknown_is_not_zero(grams, shown):
    assert fmt.avoided(grams) == shown


def test_a_wait_and_the_known_figures_in_words():
    assert fmt.waited({"deferred": True, "waited_s": 42.0}) == "waited 42 s"
    assert fmt.waited({"deferred": True, "waited_s": 725.0}) == "waited 12 min 5 s"
    assert fmt.waited({"deferred": False, "waited_s": 0.2}) == "started at once" and fmt.waited(None) == ""
    assert fmt.known_of(2, 2, "task instance") == "2 of 2 task instances with a known figure"
    assert fmt.known_of(1, 1, "try") == "1 of 1 try with a known figure"
    assert fmt.known_of(2, 4, "try") == "2 of 4 tries with a known figure; unknown ones are not counted as 0"


def test_a_budget_in_words():
    stopped = {"co2_g": 1.0, "energy_kwh": 2e-5, "spent_g": 2.0, "spent_kwh": 1e-5, "exceeded": True, "action": "stop"}
    assert fmt.budget_limits(stopped) == "1 g CO2e and 72 J" and fmt.budget_status(stopped) == "exceeded: stopped"
    assert fmt.budget_status({**stopped, "action": "warn"}) == "exceeded: warned"
    assert fmt.budget_status({**stopped, "exceeded": False, "action": "none"}) == "within budget"
    assert fmt.budget_limits({"co2_g": None, "energy_kwh": None}) == "none set"
    assert fmt.budget_status(None, exceeded=True, action="stop") == "exceeded: stopped" and fmt.budget_status(None) == ""


def test_a_gpu_entry_says_how_its_energy_was_attributed():
    from airflow_carbon.ui.format import attribution, joules

    assert attribution({"energy_j": 10.0}) == ""  # a record from before 0.3.0
    assert attribution({"attribution": "exclusive", "share": 1.0, "device_energy_j": 10.0}) == "alone on the GPU: its whole energy"
    shared = {"attribution": "equal-split", "share": 0.75, "device_energy_j": 1800.0, "concurrent_windows": 2}
    assert attribution(shared) == f"equal split with up to 1 other window: 75 % of the {joules(1800.0)} the GPU drew"
    mig = attribution({"attribution": "mig-allocation", "share": 4 / 7, "device_energy_j": 700.0})
    assert mig.startswith("MIG slices' share: 57 % of the ") and "an allocation, not a measurement" in mig
