"""A try's energy cut at the grid-intensity intervals it spans (core/segments.py)."""

from __future__ import annotations

import pytest

from airflow_carbon.core.segments import IntensityInterval, energy_segments, segment_emissions_g, weighted_g_per_kwh

pytestmark = pytest.mark.unit

H = 3600.0
T0 = 1_764_000_000.0 - (1_764_000_000.0 % H)  # an hour boundary, UTC


def hourly(*g_per_kwh: float, start: float = T0, estimated: bool = False) -> list[IntensityInterval]:
    return [IntensityInterval(start + n * H, start + (n + 1) * H, g, "electricitymaps:DE", estimated) for n, g in enumerate(g_per_kwh)]


def cut(points, intervals, **kw):
    return energy_segments(points, intervals, fallback_g_per_kwh=kw.get("fallback", 381.0), fallback_source="bundled:DE")


def test_a_try_across_an_hour_boundary_uses_both_hours():
    # 30 min before 01:00 at 1 kW, 30 min after at 3 kW; a checkpoint exactly at the boundary
    points = [(T0 + 0.5 * H, 0.0), (T0 + H, 1.8e6), (T0 + 1.5 * H, 1.8e6 + 5.4e6)]
    segments = cut(points, hourly(200.0, 400.0))
    assert [(s["start"], s["end"], s["g_per_kwh"]) for s in segments] == [(T0 + 0.5 * H, T0 + H, 200.0), (T0 + H, T0 + 1.5 * H, 400.0)]
    assert [s["energy_kwh"] for s in segments] == pytest.approx([0.5, 1.5])
    assert not any(s["energy_estimated"] or s["estimated"] for s in segments)
    assert segment_emissions_g(segments, pue=1.2) == pytest.approx((0.5 * 200 + 1.5 * 400) * 1.2)
    # energy-weighted, not time-weighted: most energy was drawn in the dirtier hour
    assert weighted_g_per_kwh(segments) == pytest.approx((0.5 * 200 + 1.5 * 400) / 2.0)


def test_a_boundary_between_checkpoints_shares_that_span_by_time_and_says_so():
    points = [(T0 + 0.75 * H, 0.0), (T0 + 1.25 * H, 3.6e6)]  # 1 kWh over 30 min, no checkpoint at 01:00
    segments = cut(points, hourly(100.0, 300.0))
    assert [s["energy_kwh"] for s in segments] == pytest.approx([0.5, 0.5])
    assert all(s["energy_estimated"] for s in segments)
    assert segment_emissions_g(segments, 1.0) == pytest.approx(0.5 * 100 + 0.5 * 300)


def test_checkpoints_inside_one_interval_make_one_exact_segment():
    points = [(T0 + 60, 0.0), (T0 + 600, 1e6), (T0 + 1200, 2e6), (T0 + 1800, 3.6e6)]
    (segment,) = cut(points, hourly(250.0))
    assert (segment["start"], segment["end"]) == (T0 + 60, T0 + 1800)
    assert segment["energy_kwh"] == pytest.approx(1.0) and not segment["energy_estimated"]


def test_equal_intensities_in_two_intervals_stay_two_segments():
    points = [(T0 + 0.5 * H, 0.0), (T0 + 1.5 * H, 7.2e6)]
    assert len(cut(points, hourly(300.0, 300.0))) == 2  # the source's granularity is kept


def test_short_intervals_and_a_gap_the_source_does_not_cover_fall_back_to_the_bundled_figure():
    five_min = [IntensityInterval(T0 + n * 300, T0 + (n + 1) * 300, g, "watttime:CAISO_NORTH", True) for n, g in enumerate((500.0, 100.0))]
    points = [(T0, 0.0), (T0 + 900, 9e5 * 3)]  # 15 min at 3 kW; the series covers the first 10 min only
    segments = cut(points, five_min, fallback=381.0)
    assert [s["source"] for s in segments] == ["watttime:CAISO_NORTH", "watttime:CAISO_NORTH", "bundled:DE"]
    assert [s["g_per_kwh"] for s in segments] == [500.0, 100.0, 381.0]
    assert all(s["estimated"] for s in segments)
    assert sum(s["energy_kwh"] for s in segments) == pytest.approx(0.75)


def test_intervals_outside_the_window_are_ignored_and_order_does_not_matter():
    points = [(T0 + 1.1 * H, 0.0), (T0 + 1.2 * H, 3.6e5)]
    segments = cut(points, list(reversed(hourly(10.0, 20.0, 30.0))))
    assert [(s["g_per_kwh"], s["energy_kwh"]) for s in segments] == [(20.0, pytest.approx(0.1))]


def test_no_energy_gives_the_time_weighted_intensity():
    points = [(T0 + 0.5 * H, 5.0), (T0 + 1.5 * H, 5.0)]
    segments = cut(points, hourly(100.0, 300.0))
    assert segment_emissions_g(segments, 1.0) == 0.0 and weighted_g_per_kwh(segments) == pytest.approx(200.0)
    assert weighted_g_per_kwh([]) is None


@pytest.mark.parametrize(("points", "message"), [
    ([(T0, 0.0)], "needs the try's start and end, got 1 point"),
    ([(T0, 0.0), (T0, 1.0)], "times must increase"),
    ([(T0, 5.0), (T0 + 1, 1.0)], "energy must not decrease, got 5.0 J then 1.0 J"),
])
def test_bad_energy_points_are_refused_naming_the_values(points, message):
    with pytest.raises(ValueError, match=message):
        cut(points, hourly(100.0))


def test_bad_intervals_are_refused_naming_the_values():
    with pytest.raises(ValueError, match=r"start_s < end_s"):
        IntensityInterval(T0, T0, 100.0, "x")
    with pytest.raises(ValueError, match=r"g_per_kwh=-1\.0 is invalid"):
        IntensityInterval(T0, T0 + H, -1.0, "x")
    overlapping = [IntensityInterval(T0, T0 + H, 1.0, "x"), IntensityInterval(T0 + 0.5 * H, T0 + 2 * H, 2.0, "x")]
    with pytest.raises(ValueError, match="intensity intervals overlap"):
        cut([(T0, 0.0), (T0 + 2 * H, 1.0)], overlapping)
