"""The Airflow layer in a real Airflow: DAG files from tests/dags run with dag.test(), records read back
from the metadata database's XComs, the tracked tasks running against the simulated GPU."""

from __future__ import annotations

import pytest

from airflow_carbon import validate_record
from airflow_helpers import run_dag, xcom_value

pytestmark = pytest.mark.airflow


def _run(airflow_dags, dag_id):
    return run_dag(airflow_dags, dag_id)


def _by_task(records):
    return {(r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"]): r for r in records}


def test_mapped_decorated_task_records_every_instance(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:300")
    run, records = _run(airflow_dags, "carbon_mapped")
    assert run.state == "success"
    got = _by_task(records)
    assert set(got) == {("train", 0, 1), ("train", 1, 1), ("train", 2, 1), ("train_once", -1, 1)}
    for record in records:
        assert record["status"] == "success"
        assert record["gpus"][0]["method"] == "counter" and record["gpus"][0]["energy_j"] > 0
        assert record["intensity"]["location"] == "FR"
        assert record["task"]["dag_id"] == "carbon_mapped" and record["task"]["run_id"] == run.run_id
        assert record["task"]["training_type"] == "fine-tuning"
    assert got[("train_once", -1, 1)]["pue"] == 1.2  # .override() reaches the meter


def test_mapped_task_return_values_still_flow_downstream(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:100")
    run = airflow_dags.get_dag("carbon_mapped").test()
    assert xcom_value(run.run_id, "collect") == [0.001, 0.01, 0.1]  # multiple_outputs -> "lr"
    assert xcom_value(run.run_id, "train", "label", map_index=0) == run.run_id  # templated argument rendered


def test_a_failed_try_is_kept_in_the_last_tries_xcom(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:200")
    run, records = _run(airflow_dags, "carbon_flaky")
    assert run.state == "success"
    assert [(r["task"]["try_number"], r["status"]) for r in records] == [(1, "failed"), (2, "success")]
    assert all(r["components"]["gpu"]["energy_kwh"] > 0 and r["intensity"]["location"] == "CA-QC" for r in records)


def test_classic_operator_and_a_wrapped_bash_operator(airflow_dags, fake_gpu):
    fake_gpu("count=2; power=const:150")
    _, records = _run(airflow_dags, "carbon_classic")
    got = _by_task(records)
    classic, bash = got[("classic", -1, 1)], got[("bash_child", -1, 1)]
    assert classic["intensity"]["location"] == "US-CA" and bash["intensity"]["location"] == "DE"
    assert bash["components"]["cpu"]["cpu_time_s"] >= 0.5  # the shell's child burnt 0.5 s of CPU
    assert len(bash["gpus"]) == 2 and bash["hardware_used"].startswith("2 x NVIDIA H200")


def test_listener_tracks_matching_tasks_once(airflow_dags, fake_gpu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CARBON__AUTO_TRACK", "True")
    monkeypatch.setenv("AIRFLOW__CARBON__AUTO_TRACK_QUEUES", "gpu")
    monkeypatch.setenv("AIRFLOW__CARBON__LOCATION", "SE3")
    fake_gpu("count=1; power=const:100")
    _, records = _run(airflow_dags, "carbon_listener")
    got = _by_task(records)
    assert set(got) == {("plain", -1, 1), ("decorated", -1, 1)}  # "elsewhere" runs on another queue
    assert got[("plain", -1, 1)]["intensity"]["location"] == "SE3"
    assert got[("decorated", -1, 1)]["intensity"]["location"] == "FR"  # measured by itself, once


def test_listener_is_off_by_default(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:100")
    _, records = _run(airflow_dags, "carbon_listener")
    assert {r["task"]["task_id"] for r in records} == {"decorated"}


def test_records_survive_without_a_gpu_driver(airflow_dags):
    # No simulated GPU configured: the fake library answers "driver not loaded", like a broken driver.
    run, records = _run(airflow_dags, "carbon_flaky")
    assert run.state == "success" and len(records) == 2
    assert all(r["components"]["gpu"]["method"] == "missing" for r in records)
    assert all(any("GPU energy is missing" in w for w in r["warnings"]) for r in records)


@pytest.mark.parametrize(
    "file, message",
    [("bad_location.py", "Unknown grid location 'Frnace'. Did you mean: France (FR)?"), ("bad_pue.py", "pue=0.8 is invalid"),
     ("bad_budget.py", "co2_budget_g=0 is invalid; expected a number > 0 gCO2e"),
     ("bad_start_within.py", "start_within=datetime.timedelta(seconds=30) is invalid; expected a timedelta, seconds, or text"),
     ("bad_on_budget_exceeded.py", "on_budget_exceeded='explode' is invalid; expected 'warn' or 'stop'"),
     ("start_within_without_forecast.py", "start_within=datetime.timedelta(seconds=28800) is invalid: a carbon-aware start needs "
      "a forecast: set intensity_conn_id")],
)
def test_bad_arguments_fail_at_parse_time(file, message):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    folder = Path(__file__).parent / "dags_bad"
    bag = DagBag(dag_folder=str(folder / file))
    (error,) = bag.import_errors.values()
    assert message in error


TEMPLATED = {("decorated", -1), ("mapped", 0), ("mapped", 1), ("classic", -1), ("classic_mapped", 0), ("classic_mapped", 1), ("bash", -1)}
"""carbon_templated's tasks whose location is "{{ params.region }}" (every form: decorated, mapped, classic,
classic mapped through partial(), a wrapped BashOperator); "intensity" takes g_per_kwh from params."""


def test_templated_options_are_rendered_before_they_are_measured_with(airflow_dags, fake_gpu):
    fake_gpu("count=1; power=const:100")
    run = airflow_dags.get_dag("carbon_templated").test(run_conf={"region": "DE", "g_per_kwh": 120})
    assert run.state == "success"
    from airflow.utils.session import create_session

    from airflow_carbon.xcom import run_records

    with create_session() as session:
        got = {(r["task"]["task_id"], r["task"]["map_index"]): r for r in run_records("carbon_templated", run.run_id, session)}
    assert set(got) == TEMPLATED | {("intensity", -1)}
    for key in TEMPLATED:
        assert got[key]["status"] == "success" and got[key]["intensity"]["location"] == "DE", key
    assert got[("intensity", -1)]["intensity"] == {**got[("intensity", -1)]["intensity"], "g_per_kwh": 120.0, "method": "explicit"}
    assert xcom_value(run.run_id, "classic") == sum(range(10))  # the task itself ran as before


def test_a_bad_rendered_value_fails_the_try_which_still_gets_its_record(airflow_dags, fake_gpu, capfd):
    fake_gpu("count=1; power=const:100")
    run, records = _run_conf(airflow_dags, "carbon_templated", {"region": "Atlantis", "g_per_kwh": "lots"})
    assert run.state == "failed"
    out = capfd.readouterr()
    # each task failed with the validation's own message, naming the rendered value
    assert "UnknownLocationError: Unknown grid location 'Atlantis'." in out.out + out.err
    assert "OptionError: g_per_kwh='lots' is invalid; expected a number >= 0 gCO2e/kWh" in out.out + out.err
    got = {(r["task"]["task_id"], r["task"]["map_index"]): r for r in records}
    assert set(got) == TEMPLATED | {("intensity", -1)}  # every try has its record, none is lost
    for key, record in got.items():
        bad = "'lots'" if key == ("intensity", -1) else "'Atlantis'"
        assert record["status"] == "failed", key
        assert record["intensity"]["method"] == "world-average" and record["intensity"]["g_per_kwh"] == 475.0, key
        assert any(bad in w and "world-average grid intensity" in w for w in record["warnings"]), (key, record["warnings"])
        assert not any("No grid location" in w for w in record["warnings"])  # the world average is explained once
        assert record["gpus"][0]["energy_j"] >= 0 and record["duration_s"] < 5


def _run_conf(airflow_dags, dag_id, conf):
    from airflow.utils.session import create_session

    from airflow_carbon.xcom import run_records

    run = airflow_dags.get_dag(dag_id).test(run_conf=conf)
    with create_session() as session:
        records = run_records(dag_id, run.run_id, session)
    for record in records:
        validate_record(record)
    return run, records
