"""CarbonIntensitySensor and its trigger in a real Airflow: DAGs under dag.test() (which runs a deferred task's
trigger in-process) and the trigger's own run() on an event loop, against a local Electricity Maps simulator
(real HTTP on loopback), the Connection given as an AIRFLOW_CONN_* variable. The XComs, the task states and
the logs are read back; the token must appear in none of them, nor in the trigger's serialized kwargs."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest

from airflow_helpers import xcom_value
from carbon_testing.gridsim import ElectricityMapsSim

pytestmark = pytest.mark.airflow

TOKEN = "em-sensor-secret-8d2e"
CONN_ID = "sensor_em"


class ScriptedEM(ElectricityMapsSim):
    """The Electricity Maps simulator, whose answers change as it is asked: a zone in ``then`` gets that figure
    (gCO2e/kWh) from its second request on; the first ``failures`` requests get a 503."""

    def __init__(self, series: dict[str, dict[float, float]], *, then: dict[str, float] | None = None, failures: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(series, **kwargs)
        self.then = dict(then or {})
        self.failures = failures
        self.seen: Counter[str] = Counter()
        """Requests per zone."""

    def _serve(self, h: Any) -> None:
        zone = self._request(h)[1].get("zone", "")
        self.seen[zone] += 1
        if zone in self.then and self.seen[zone] == 2:
            self.series[zone][self.now_s - self.now_s % 3600] = self.then[zone]
        self.fail = "503" if self.failures > 0 else None
        self.failures -= 1
        super()._serve(h)


def _sim(figures: dict[str, float], **kwargs: Any) -> ScriptedEM:
    now = time.time()
    return ScriptedEM({zone: {now - now % 3600: g} for zone, g in figures.items()}, token=TOKEN, now_s=now, **kwargs)


def _connect(monkeypatch: pytest.MonkeyPatch, sim: ElectricityMapsSim) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "electricitymaps", "host": sim.url, "password": TOKEN}))


def _states(run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}


def _first_event(trigger: Any) -> Any:
    """The trigger's first event, as the triggerer would get it: its run() on an event loop."""
    async def first() -> Any:
        return await anext(trigger.run())

    return asyncio.run(first())


def _trigger(**kwargs: Any) -> Any:
    from airflow_carbon.core.units import utc_iso
    from airflow_carbon.triggers.carbon_intensity import CarbonIntensityTrigger

    args: dict[str, Any] = {"intensity_conn_id": CONN_ID, "zone": "DE", "max_g_per_kwh": 200, "poll_interval_s": 0.2,
                            "end_at": utc_iso(time.time() + 10)}
    return CarbonIntensityTrigger(**{**args, **kwargs})


# -- under dag.test() -------------------------------------------------------------------------------


def test_the_sensor_succeeds_on_a_clean_figure_and_its_xcom_holds_it(airflow_dags, monkeypatch, capfd):
    with _sim({"DE": 120.0, "FR": 400.0, "PL": 400.0}, then={"FR": 90.0, "PL": 150.0}) as sim:
        _connect(monkeypatch, sim)
        run = airflow_dags.get_dag("carbon_sensor").test()
    out = capfd.readouterr()
    assert run.state == "success", _states(run)
    clean = xcom_value(run.run_id, "clean")
    assert clean == {"status": "success", "g_per_kwh": 120.0, "max_g_per_kwh": 200.0, "at": clean["at"], "estimated": False,
                     "source": "electricitymaps", "signal": "average", "zone": "DE", "conn_id": CONN_ID}
    assert sim.seen["DE"] == 1  # clean at the first look: no deferral
    falls = xcom_value(run.run_id, "falls")
    assert (falls["g_per_kwh"], falls["zone"]) == (90.0, "FR")
    assert sim.seen["FR"] == 2  # one look on the worker (400 > 200), then the trigger's (90)
    assert "Electricity Maps zone FR: deferring until a figure <= 200 gCO2e/kWh" in out.out + out.err
    poked = xcom_value(run.run_id, "poked")
    assert (poked["g_per_kwh"], poked["zone"]) == (150.0, "PL") and sim.seen["PL"] == 2  # location "Poland" -> zone PL
    assert "Electricity Maps zone PL: 150 gCO2e/kWh <= 200" in out.out + out.err
    assert TOKEN not in json.dumps([clean, falls, poked]) + out.out + out.err


def test_a_dirty_grid_times_out_failed_or_skipped_naming_the_last_figure(airflow_dags, monkeypatch, capfd):
    with _sim({"DE": 400.0}) as sim:
        _connect(monkeypatch, sim)
        t0 = time.monotonic()
        run = airflow_dags.get_dag("carbon_sensor_timeout").test()
        took_s = time.monotonic() - t0
    out = capfd.readouterr()
    assert run.state == "failed"
    assert _states(run) == {"dirty": "failed", "dirty_soft": "skipped", "dirty_poked": "failed"}
    assert xcom_value(run.run_id, "dirty") is None
    text = out.out + out.err
    # deferred: the trigger's timeout event, named by the sensor (and logged too where soft_fail skips)
    assert text.count("Electricity Maps zone DE: no figure at or below 50 gCO2e/kWh before") >= 2
    assert "(timeout 3 s); last figure 400 gCO2e/kWh (for " in text
    # poked: Airflow's own timeout, with what the looks saw
    assert "exceeds the specified timeout of 2.0. last figure 400 gCO2e/kWh (for " in text
    assert sim.seen["DE"] >= 2 * 3 + 2  # each sensor looked about every second
    assert took_s < 30
    assert TOKEN not in text


# -- the trigger itself -----------------------------------------------------------------------------


def test_the_triggers_kwargs_hold_the_connection_id_and_never_the_token(airflow_dags, monkeypatch):
    """The trigger the sensor really defers to (its execute, on a dirty grid), serialized as the triggerer gets it."""
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.serialization.serialized_objects import BaseSerialization

    sensor = airflow_dags.get_dag("carbon_sensor").get_task("falls")
    with _sim({"FR": 400.0}) as sim:
        _connect(monkeypatch, sim)
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context={})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_carbon.triggers.carbon_intensity.CarbonIntensityTrigger"
    assert set(kwargs) == {"intensity_conn_id", "zone", "max_g_per_kwh", "poll_interval_s", "end_at"}
    assert (kwargs["intensity_conn_id"], kwargs["zone"], kwargs["max_g_per_kwh"], kwargs["poll_interval_s"]) == (CONN_ID, "FR", 200.0, 1.0)
    assert TOKEN not in repr(kwargs) + json.dumps(BaseSerialization.serialize(kwargs)) + repr(deferred.value)


def test_the_trigger_reads_the_connection_asynchronously_and_fires_on_a_clean_figure(monkeypatch):
    with _sim({"DE": 120.0}) as sim:
        _connect(monkeypatch, sim)
        event = _first_event(_trigger())
    assert event.payload["status"] == "success" and event.payload["g_per_kwh"] == 120.0 and event.payload["zone"] == "DE"
    assert sim.seen["DE"] == 1


def test_a_503_does_not_end_the_wait(monkeypatch, capfd):
    with _sim({"DE": 120.0}, failures=2) as sim:
        _connect(monkeypatch, sim)
        event = _first_event(_trigger())
    assert event.payload["status"] == "success" and event.payload["g_per_kwh"] == 120.0
    assert sim.seen["DE"] == 3  # two 503s, then the figure
    text = capfd.readouterr()
    assert "Electricity Maps zone DE: no figure (electricitymaps: HTTP 503: Service Unavailable); polling again" in text.out + text.err


def test_a_source_that_keeps_failing_times_out_with_its_last_error(monkeypatch):
    from airflow_carbon.core.units import utc_iso

    with _sim({"DE": 120.0}, failures=1000) as sim:
        _connect(monkeypatch, sim)
        t0 = time.monotonic()
        event = _first_event(_trigger(end_at=utc_iso(time.time() + 1.5)))
        took_s = time.monotonic() - t0
    assert event.payload == {"status": "timeout", "last_g_per_kwh": None, "last_at": None,
                             "last_error": "electricitymaps: HTTP 503: Service Unavailable", "max_g_per_kwh": 200.0,
                             "source": "electricitymaps", "zone": "DE", "end_at": event.payload["end_at"]}
    assert sim.seen["DE"] >= 5 and 1.4 < took_s < 5  # polled every 0.2 s until end_at, and stopped there


def test_a_missing_connection_is_an_error_event_not_a_crash(monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    event = _first_event(_trigger())
    assert event.payload["status"] == "error" and f"Connection {CONN_ID!r} cannot be used" in event.payload["message"]


# -- parse time -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, shown", [("0", "0"), ("-1", "-1"), ("'abc'", "'abc'"), ("float('nan')", "nan"), ("True", "True")])
def test_a_bad_threshold_is_a_dag_import_error_naming_it(tmp_path, code, shown):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bad_threshold.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import dag\n"
        "from airflow_carbon import CarbonIntensitySensor\n\n"
        "@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC'))\n"
        "def carbon_bad_threshold():\n"
        f"    CarbonIntensitySensor(task_id='wait', location='DE', intensity_conn_id='em', max_g_per_kwh={code})\n\n"
        "carbon_bad_threshold()\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    (error,) = bag.import_errors.values()
    assert f"max_g_per_kwh={shown} is invalid; expected a number > 0 gCO2e/kWh" in error


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"location": "Germny"}, "Germany (DE)"),
        ({"intensity_zone": "DE/x"}, "intensity_zone='DE/x' is invalid"),
        ({"location": None}, "needs location"),
        ({"intensity_conn_id": "bad id!"}, "intensity_conn_id='bad id!' is invalid"),
        ({"intensity_conn_id": None}, "needs intensity_conn_id (or [carbon] intensity_conn_id)"),
        ({"poke_interval": 0}, "poke_interval=0 is invalid"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    from airflow_carbon import CarbonIntensitySensor

    with pytest.raises(ValueError) as err:
        CarbonIntensitySensor(task_id="wait", **{"location": "DE", "intensity_conn_id": "em", "max_g_per_kwh": 200, **kwargs})
    assert message in str(err.value)


def test_the_connection_id_defaults_to_the_config_and_is_not_looked_up_at_parse_time(monkeypatch):
    from airflow_carbon import CarbonIntensitySensor

    monkeypatch.setenv("AIRFLOW__CARBON__INTENSITY_CONN_ID", "no_such_connection")
    sensor = CarbonIntensitySensor(task_id="wait", intensity_zone="DE", max_g_per_kwh="150")
    assert (sensor.intensity_conn_id, sensor.max_g_per_kwh, sensor.poke_interval, sensor.deferrable) == ("no_such_connection", 150.0, 300.0, True)
    templated = CarbonIntensitySensor(task_id="t", location="{{ params.region }}", intensity_conn_id="em", max_g_per_kwh=1)
    assert templated.location == "{{ params.region }}"  # checked once rendered


def test_the_provider_registers_the_sensor_and_the_trigger():
    from airflow.providers_manager import ProvidersManager

    triggers = {t.trigger_class_name for t in ProvidersManager().trigger if t.package_name == "airflow-carbon"}
    assert "airflow_carbon.triggers.carbon_intensity" in triggers
    info = ProvidersManager().providers["airflow-carbon"].data
    assert all(s["python-modules"] == ["airflow_carbon.sensors.carbon_intensity"] for s in info["sensors"])
