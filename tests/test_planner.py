"""The start planner (core/planner.py): pure, Airflow-free. Each chosen start is the argmin worked out by
hand for the forecast shape, and every way the forecast cannot decide starts at once and says why."""

from __future__ import annotations

import pytest

from airflow_carbon.core.planner import Forecast, plan_start
from airflow_carbon.core.segments import IntensityInterval

pytestmark = pytest.mark.unit

H = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def hourly(*values: float, start: float = T0, step: float = H) -> list[IntensityInterval]:
    return [IntensityInterval(start + k * step, start + (k + 1) * step, v, "test") for k, v in enumerate(values)]


def test_a_valley_later_in_the_window_is_waited_for():
    # 2 h job; windows starting at hours 0..4: means 300, 250, 150, 100 (hours 3-4: 100, 100), 150
    plan = plan_start(hourly(300, 300, 200, 100, 100, 200, 300), now_s=T0, start_within_s=4 * H, duration_s=2 * H)
    assert plan.planned_start_s == T0 + 3 * H
    assert (plan.g_per_kwh_now, plan.g_per_kwh_planned) == (300, 100)
    assert plan.wait_s == 3 * H and plan.saving_pct == pytest.approx(100 * 200 / 300)
    assert plan.reason.startswith("waited 10800 s for a forecast 100 gCO2e/kWh instead of 300")


def test_the_best_start_may_fall_between_two_points():
    # 1.5 h job on hourly points 400, 100, 100, 400: the window [1 h, 2.5 h] or anything ending by 3 h
    # starts at 1 h (mean 100); starting 0.5 h later still fits in [1.5, 3]: also 100: ties go earliest
    plan = plan_start(hourly(400, 100, 100, 400), now_s=T0, start_within_s=3 * H, duration_s=1.5 * H)
    assert plan.planned_start_s == T0 + H and plan.g_per_kwh_planned == pytest.approx(100)
    # now inside an hour: the candidates are where the window's start or end meets a boundary
    plan = plan_start(hourly(400, 100, 400, 400), now_s=T0 + 0.25 * H, start_within_s=2 * H, duration_s=0.5 * H)
    assert plan.planned_start_s == T0 + H and plan.g_per_kwh_planned == 100


def test_five_minute_and_irregular_points_use_their_own_timestamps():
    five = hourly(*[500] * 6 + [50] * 3 + [500] * 6, step=300)  # a 15-minute dip starting at 30 min
    plan = plan_start(five, now_s=T0, start_within_s=H, duration_s=900)
    assert plan.planned_start_s == T0 + 1800 and plan.g_per_kwh_planned == 50
    irregular = [IntensityInterval(T0, T0 + 600, 300, "x"), IntensityInterval(T0 + 600, T0 + 4000, 280, "x"),
                 IntensityInterval(T0 + 4000, T0 + 4100, 10, "x"), IntensityInterval(T0 + 4100, T0 + 9000, 290, "x")]
    plan = plan_start(irregular, now_s=T0, start_within_s=2 * H, duration_s=1000)
    # windows holding the 100 s at 10 g: mean = (100 x 10 + 900 x ~285) / 1000; best when the other 900 s
    # are the 280 span: start at 4100 - 1000 = 3100 (900 s at 280, then the dip): 253 g
    assert plan.planned_start_s == T0 + 3100 and plan.g_per_kwh_planned == pytest.approx((900 * 280 + 100 * 10) / 1000)


def test_a_small_saving_does_not_make_it_wait():
    flat = hourly(300, 300, 290, 290, 300)
    plan = plan_start(flat, now_s=T0, start_within_s=3 * H, duration_s=2 * H)
    assert plan.planned_start_s == T0 and plan.g_per_kwh_planned == 300
    assert "saves 3.3 %, less than min_saving_pct 5 %" in plan.reason
    assert plan_start(flat, now_s=T0, start_within_s=3 * H, duration_s=2 * H, min_saving_pct=3).planned_start_s == T0 + 2 * H


def test_a_rising_forecast_starts_at_once():
    plan = plan_start(hourly(100, 200, 300, 400), now_s=T0, start_within_s=2 * H, duration_s=H)
    assert plan.planned_start_s == T0 and plan.reason == "started at once: no later start in the window is greener"


def test_the_horizon_clips_start_within_and_says_so():
    plan = plan_start(hourly(300, 300, 300, 100, 100), now_s=T0, start_within_s=24 * H, duration_s=2 * H)
    assert plan.clipped_to_s == T0 + 3 * H and plan.planned_start_s == T0 + 3 * H
    assert "start_within clipped to the forecast's horizon (latest start 10800 s from now)" in plan.reason


@pytest.mark.parametrize("forecast, why", [
    ([], "the forecast does not cover now"),
    (hourly(100, 100, start=T0 + H), "the forecast does not cover now"),
    (hourly(100), "the forecast covers 1 h from now, less than the expected duration (2 h)"),
])
def test_a_forecast_that_cannot_decide_starts_at_once(forecast, why):
    plan = plan_start(forecast, now_s=T0, start_within_s=4 * H, duration_s=2 * H)
    assert plan.planned_start_s == T0 and plan.g_per_kwh_now is None and plan.reason == f"started at once: {why}"


def test_a_gap_in_the_forecast_is_never_planned_across():
    gappy = hourly(300, 300) + hourly(10, 10, start=T0 + 3 * H)  # nothing for hour 2
    plan = plan_start(gappy, now_s=T0, start_within_s=6 * H, duration_s=2 * H)
    assert plan.planned_start_s == T0 and plan.clipped_to_s == T0  # the covered span from now ends at 2 h


def test_the_planner_matches_a_brute_force_search_on_random_forecasts():
    import random

    rng = random.Random(7)
    for _ in range(200):
        values = [rng.uniform(20, 600) for _ in range(30)]
        f = Forecast(hourly(*values))
        within, duration = rng.randint(1, 20) * H, rng.randint(1, 6) * H
        plan = plan_start(f, now_s=T0, start_within_s=within, duration_s=duration, min_saving_pct=0)
        best = min(f.mean(T0 + s * 60, duration) or 1e9 for s in range(0, int(within / 60) + 1))  # every minute
        assert plan.g_per_kwh_planned == pytest.approx(best, rel=1e-9)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="duration_s=0"):
        plan_start(hourly(1), now_s=T0, start_within_s=H, duration_s=0)
