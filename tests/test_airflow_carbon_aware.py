"""Acting on the numbers in a real Airflow (dag.test(), whose triggers run in-process as the triggerer runs
them): a tracked task that defers to the greenest minute of a simulated Electricity Maps forecast and records
what the wait avoided; the fail-open starts (a 503, a malformed forecast); budgets that warn, and that stop a
Python task and a tracked BashOperator whose child ignores SIGTERM, leaving no process behind."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest

from airflow_carbon.core.sources.http import unix_s
from airflow_helpers import run_dag
from carbon_testing.gridsim import ElectricityMapsSim

pytestmark = pytest.mark.airflow

EM_TOKEN = "em-secret-token-aware-51d0"


@contextlib.contextmanager
def _em(monkeypatch, forecast: dict[float, float], *, live_g: float = 100.0, fail_forecast: str | None = None
        ) -> Iterator[ElectricityMapsSim]:
    """The Electricity Maps simulator (DE at ``live_g`` g/kWh, this ``forecast``) behind electricitymaps_default."""
    now = time.time()
    hour = now - now % 3600
    with ElectricityMapsSim({"DE": {hour - 3600: live_g, hour: live_g, hour + 3600: live_g}}, token=EM_TOKEN, now_s=None,
                            forecasts={"DE": forecast}) as sim:
        sim.fail_forecast = fail_forecast
        conn = {"conn_type": "electricitymaps", "host": sim.url, "password": EM_TOKEN}
        monkeypatch.setenv("AIRFLOW_CONN_ELECTRICITYMAPS_DEFAULT", json.dumps(conn))
        yield sim


def _minutes(values: list[float]) -> tuple[float, dict[float, float]]:
    """Forecast points a minute apart from the current minute; in its last 15 s, from the next one (so that the
    run, which starts a few seconds later, is asked to start early in the first minute, whose 400 g it avoids)."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    now = time.time()
    minute = now - now % 60
    return minute, {minute + 60 * k: v for k, v in enumerate(values)}


def test_a_task_defers_to_the_greenest_minute_and_records_what_it_avoided(airflow_dags, fake_gpu, cache_dir, monkeypatch):
    fake_gpu("count=1; power=const:300")
    # a 1-minute job within 4 minutes: this minute is dirty, the next one clean, then dirty again
    minute, forecast = _minutes([400, 100, 400, 400, 400, 400, 400, 400])
    with _em(monkeypatch, forecast, live_g=100.0) as sim:
        run, (record,) = run_dag(airflow_dags, "carbon_aware_start")
    assert run.state == "success"
    shift = record["shift"]
    requested = unix_s(shift["requested_at"])
    assert shift["deferred"] is True
    assert unix_s(shift["planned_start"]) == pytest.approx(minute + 60)  # the argmin: the clean minute
    assert unix_s(shift["started_at"]) >= minute + 60 - 0.5
    assert shift["waited_s"] == pytest.approx(unix_s(shift["started_at"]) - requested, abs=0.01)  # ISO times: ms
    assert shift["expected_duration_s"] == 60 and shift["expected_duration_from"] == "expected_duration"
    assert shift["start_within_s"] == 240
    assert shift["forecast_g_per_kwh_planned"] == 100
    # starting when asked: the rest of this minute at 400, then the clean one at 100
    frac = (minute + 60 - requested) / 60
    assert shift["forecast_g_per_kwh_now"] == pytest.approx(400 * frac + 100 * (1 - frac), abs=1.0)
    assert shift["forecast_source"] == "Electricity Maps zone DE (Connection 'electricitymaps_default')"
    assert shift["reason"].startswith("waited ")
    # the wait is not measured: the record covers the work (about a second), not the minute before it
    assert record["duration_s"] < 10 and unix_s(record["started_at"]) >= minute + 60 - 0.5
    assert record["intensity"]["method"] == "live"
    expected = record["energy_kwh"] * shift["forecast_g_per_kwh_now"] * record["pue"] - record["emissions_g"]
    assert shift["avoided_g"] == pytest.approx(expected) and shift["avoided_g"] > 0
    assert EM_TOKEN not in json.dumps(record)
    assert [p for p, _ in sim.requests].count("/v3/carbon-intensity/forecast") == 1


@pytest.mark.parametrize("failure, reason", [("503", "HTTP 503"), ("malformed", "malformed")])
def test_a_failing_forecast_starts_at_once_and_says_why(airflow_dags, fake_gpu, cache_dir, monkeypatch, failure, reason):
    fake_gpu("count=1; power=const:300")
    _, forecast = _minutes([400, 100, 400, 400, 400, 400])
    with _em(monkeypatch, forecast, fail_forecast=failure):
        run, (record,) = run_dag(airflow_dags, "carbon_aware_start")
    assert run.state == "success"
    shift = record["shift"]
    assert shift["deferred"] is False and shift["waited_s"] < 5
    assert shift["planned_start"] == shift["requested_at"]
    assert shift["reason"].startswith("started at once: no forecast (electricitymaps: ") and reason in shift["reason"]
    assert shift["forecast_g_per_kwh_now"] is None and shift["avoided_g"] == 0.0
    assert record["intensity"]["method"] == "live"  # the live figures themselves still came


def test_the_expected_duration_defaults_to_the_median_of_the_tasks_recent_successful_tries(airflow_dags, fake_gpu,
                                                                                          cache_dir, monkeypatch):
    fake_gpu("count=1; power=const:300")
    _, forecast = _minutes([400, 100])
    with _em(monkeypatch, forecast, fail_forecast="503"):  # starts at once: the plan's inputs are what this test reads
        _, (first,) = run_dag(airflow_dags, "carbon_aware_default_duration")
        _, (second,) = run_dag(airflow_dags, "carbon_aware_default_duration")
    assert second["task"]["run_id"] != first["task"]["run_id"]
    assert second["shift"]["expected_duration_s"] == pytest.approx(first["duration_s"])
    assert second["shift"]["expected_duration_from"] == "the median of 1 successful tries on record"
    # the first run of the DAG here may follow earlier runs of this session: its figure came from them or is 1 h
    assert first["shift"]["expected_duration_from"] in ("1 h: no expected_duration and no successful try on record",
                                                        "the median of 1 successful tries on record")


def test_a_warn_budget_warns_and_the_task_goes_on(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:300")
    run, (record,) = run_dag(airflow_dags, "carbon_budget_warn")
    assert run.state == "success" and record["status"] == "success"
    budget = record["budget"]
    assert budget["co2_g"] == 1e-6 and budget["energy_kwh"] is None
    assert budget["exceeded"] is True and budget["action"] == "warn" and budget["on_exceeded"] == "warn"
    assert budget["spent_g"] == pytest.approx(record["emissions_g"]) and budget["spent_kwh"] == pytest.approx(record["energy_kwh"])
    assert any("the task's budget is exceeded" in w and "went on" in w for w in record["warnings"])
    assert record["duration_s"] > 0.9  # its work ran to the end


def test_a_stop_budget_stops_a_python_task_within_about_a_second_without_retries(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:300")  # 2e-5 kWh (72 J) is crossed after ~0.25 s at 300 W
    started = time.monotonic()
    run, records = run_dag(airflow_dags, "carbon_budget_python")
    assert time.monotonic() - started < 30  # the callable would sleep 60 s
    assert run.state == "failed"
    (record,) = records  # retries=2, yet a single try: a retry would only exceed again
    assert record["status"] == "failed" and record["task"]["try_number"] == 1
    budget = record["budget"]
    assert budget["exceeded"] is True and budget["action"] == "stop" and budget["energy_kwh"] == 2e-5
    assert budget["spent_kwh"] == pytest.approx(record["energy_kwh"]) and record["energy_kwh"] > 2e-5
    # stopped within about a second of crossing: ~0.25 s to cross, then at most a progress interval and the stop
    assert record["duration_s"] < 2.5
    assert any("the try was stopped" in w for w in record["warnings"])


def test_a_stop_budget_stops_a_tracked_bash_operator_and_leaves_no_process(airflow_dags, fake_gpu, tmp_path, monkeypatch):
    fake_gpu("count=1; power=const:300")
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("CARBON_TEST_PID_FILE", str(pid_file))
    run, records = run_dag(airflow_dags, "carbon_budget_bash")
    assert run.state == "failed"
    (record,) = records  # retries=1, not used
    assert record["budget"]["action"] == "stop" and record["status"] == "failed"
    pid = int(pid_file.read_text())
    # the child ignored SIGTERM: it got SIGKILL after budget_grace_s (2 s), before the task ended
    assert not _running(pid), f"the BashOperator's child {pid} is still running"
    assert record["duration_s"] < 2 + 5


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except FileNotFoundError:
        return False



def test_a_run_budget_fails_the_run_naming_its_largest_contributors(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:300")
    run, records = run_dag(airflow_dags, "carbon_run_budget_exceeded")
    assert run.state == "failed"
    from airflow.utils.session import create_session

    with create_session() as session:
        (budget_ti,) = [ti for ti in run.get_task_instances(session=session) if ti.task_id == "budget"]
        assert budget_ti.state == "failed" and budget_ti.try_number == 1
    by_task = {f"train[{r['task']['map_index']}]": r["emissions_g"] for r in records}
    assert by_task["train[1]"] > by_task["train[0]"] > 0  # 1 s of work against 0.2 s


def test_a_run_within_budget_passes_and_returns_its_spending(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:300")
    run, records = run_dag(airflow_dags, "carbon_run_budget_within")
    assert run.state == "success"
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        (row,) = session.query(XComModel).filter_by(dag_id="carbon_run_budget_within", run_id=run.run_id,
                                                    task_id="budget", key="return_value").all()
        result = XComModel.deserialize_value(row)
    assert result["exceeded"] is False
    assert result["spent_g"] == pytest.approx(sum(r["emissions_g"] for r in records))
    assert result["spent_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in records))
    assert [c["task"] for c in result["contributions"]] == ["train[1]", "train[0]"]

