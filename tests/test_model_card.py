"""PublishModelCardOperator in real DAG runs (dag.test()): a local model folder here; the Hub in
tests/test_model_card_hub.py."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from airflow_carbon.card.text import existing_co2
from airflow_helpers import xcom_value

pytestmark = pytest.mark.airflow


def _publish_result(run):
    return xcom_value(run.run_id, "publish")


def test_a_run_publishes_every_try_to_a_local_card(airflow_dags, fake_gpu, tmp_path):
    fake_gpu("count=1; power=const:300")
    run = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path)})
    assert run.state == "success"
    result = _publish_result(run)
    records = json.loads((tmp_path / "emissions.json").read_text())
    assert sorted((r["task"]["map_index"], r["task"]["try_number"], r["status"]) for r in records) == [(0, 1, "failed"), (0, 2, "success"), (1, 1, "success")]
    co2 = existing_co2((tmp_path / "README.md").read_text())
    assert co2 == result["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(sum(r["emissions_g"] for r in records), rel=1e-5)
    assert co2["training_type"] == "fine-tuning" and co2["geographical_location"] == "Quebec, Canada"
    assert co2["hardware_used"].startswith("1 x NVIDIA H200") and "NVML energy counters" in co2["source"]
    assert result["totals"]["tries"] == 3 and len(result["breakdown"]) == 3
    rows = list(csv.DictReader(io.StringIO((tmp_path / "emissions.csv").read_text())))
    assert rows[0].keys() >= {"timestamp", "project_name", "run_id", "duration", "emissions", "gpu_energy", "energy_consumed"}
    assert sum(float(r["emissions"]) for r in rows) * 1000 == pytest.approx(co2["emissions"], rel=1e-5)  # kg, as CodeCarbon


def test_a_mapped_task_is_read_a_page_at_a_time_and_the_breakdown_is_bounded(airflow_dags, fake_gpu, tmp_path, monkeypatch):
    """The publisher reads a mapped task's values a page of task instances at a time (memory holds one page):
    with pages of one instance the card is the same; the returned breakdown lists the first tries in task
    order and counts the others, so a sweep of any size returns a small XCom."""
    import airflow_carbon.operators.model_card as model_card
    import airflow_carbon.xcom as xcom

    fake_gpu("count=1; power=const:300")
    whole = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path / "whole")})
    monkeypatch.setattr(xcom, "PAGE_SIZE", 1)
    monkeypatch.setattr(model_card, "BREAKDOWN_ROWS", 2)
    paged = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path / "paged")})
    one, other = _publish_result(whole), _publish_result(paged)
    assert other["totals"]["tries"] == one["totals"]["tries"] == 3
    assert other["co2_eq_emissions"]["hardware_used"] == one["co2_eq_emissions"]["hardware_used"]
    assert len(json.loads((tmp_path / "paged" / "emissions.json").read_text())) == 3
    assert [(r["map_index"], r["try_number"]) for r in other["breakdown"]] == [(0, 1), (0, 2)]
    assert other["breakdown_omitted"] == 1 and one["breakdown_omitted"] == 0


def test_earlier_runs_count_when_asked(airflow_dags, fake_gpu, tmp_path):
    fake_gpu("count=1; power=const:200")
    first = airflow_dags.get_dag("carbon_card_sweep").test(run_conf={"dir": str(tmp_path / "a")})
    second = airflow_dags.get_dag("carbon_card_sweep").test(run_conf={"dir": str(tmp_path / "b"), "earlier_runs": first.run_id})
    one, both = _publish_result(first), _publish_result(second)
    assert one["totals"]["tries"] == 3 and both["totals"]["tries"] == 6
    assert {row["run_id"] for row in both["breakdown"]} == {first.run_id, second.run_id}
    assert both["co2_eq_emissions"]["emissions"] > one["co2_eq_emissions"]["emissions"]


def test_the_existing_card_is_kept_and_a_rerun_rewrites_the_same_value(airflow_dags, fake_gpu, tmp_path):
    card = "---\r\nlicense: mit\r\nbase_model: org/base  # from the hub\r\n---\r\n\r\n# My model\r\n\r\nSome *text*.\r\n"
    (tmp_path / "README.md").write_bytes(card.encode())
    fake_gpu("count=1; power=const:300")
    run = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path)})
    first = (tmp_path / "README.md").read_bytes().decode()
    assert first.startswith("---\r\nlicense: mit\r\nbase_model: org/base  # from the hub\r\nco2_eq_emissions:\r\n")
    assert first.endswith("---\r\n\r\n# My model\r\n\r\nSome *text*.\r\n")
    # the same run's publisher runs again (Airflow retry or clear): same value, not added to itself

    from airflow_carbon.operators.model_card import PublishModelCardOperator

    op = airflow_dags.get_dag("carbon_card_local").get_task("publish")
    assert isinstance(op, PublishModelCardOperator)
    result = _publish_result(run)
    (tmp_path / "README.md").write_bytes(first.encode())
    run2 = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path)})
    second = existing_co2((tmp_path / "README.md").read_text())
    assert second == _publish_result(run2)["co2_eq_emissions"] != result["co2_eq_emissions"]  # a new run: recomputed
    assert "co2_eq_emissions" in yaml.safe_load(first.split("---")[1])


def test_a_card_from_elsewhere_is_not_overwritten_by_default(airflow_dags, fake_gpu, tmp_path):
    card = "---\nco2_eq_emissions:\n  emissions: 42\n  source: CodeCarbon\n---\nbody\n"
    (tmp_path / "README.md").write_text(card)
    fake_gpu("count=1")
    run = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path)})
    assert run.state == "failed"
    assert (tmp_path / "README.md").read_text() == card


def test_malformed_yaml_fails_and_leaves_the_card(airflow_dags, fake_gpu, tmp_path):
    card = "---\nlicense: [mit\n---\nbody\n"
    (tmp_path / "README.md").write_text(card)
    fake_gpu("count=1")
    run = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path)})
    assert run.state == "failed" and (tmp_path / "README.md").read_text() == card


def test_no_records_fails_naming_the_tasks(airflow_dags, tmp_path, capfd):
    run = airflow_dags.get_dag("carbon_card_nothing").test(run_conf={"dir": str(tmp_path)})
    assert run.state == "failed"
    out, err = capfd.readouterr()
    assert "no airflow-carbon records in XCom key 'carbon_records' of tasks untracked" in out + err
    assert not (tmp_path / "README.md").exists()


def test_a_record_that_fails_the_schema_is_named(airflow_dags, tmp_path, capfd):
    run = airflow_dags.get_dag("carbon_card_bad_record").test(run_conf={"dir": str(tmp_path)})
    assert run.state == "failed"
    out, err = capfd.readouterr()
    assert "task 'forged' (map index -1, try 1" in out + err and "invalid record field" in out + err
    assert not (tmp_path / "README.md").exists()


def test_no_records_can_skip(airflow_dags, tmp_path):
    from airflow.utils.session import create_session

    run = airflow_dags.get_dag("carbon_card_skip").test(run_conf={"dir": str(tmp_path)})
    with create_session() as session:
        (ti,) = [t for t in run.get_task_instances(session=session) if t.task_id == "publish"]
        assert ti.state == "skipped"
    assert not (tmp_path / "README.md").exists()


def test_bad_publisher_arguments_fail_at_parse_time():
    from airflow_carbon import PublishModelCardOperator

    with pytest.raises(ValueError, match="exactly one of repo_id"):
        PublishModelCardOperator(task_id="p", training_type="fine-tuning")
    with pytest.raises(ValueError, match="on_existing='merge'"):
        PublishModelCardOperator(task_id="p", training_type="fine-tuning", local_dir="x", on_existing="merge")
