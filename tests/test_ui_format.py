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
