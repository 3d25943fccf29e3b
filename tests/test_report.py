import pytest

from airflow_carbon import EnergyMeter
from airflow_carbon.core.report import records_table

pytestmark = pytest.mark.unit


def _record(task_id, map_index, try_number, status):
    with EnergyMeter(location="CA-QC", cuda_visible_devices="") as meter:
        pass
    record = meter.record
    record["task"] = {"dag_id": "d", "run_id": "r", "task_id": task_id, "map_index": map_index, "try_number": try_number}
    record["status"] = status
    return record


def test_table_lists_every_try_with_methods_and_the_total():
    records = [_record("train", 1, 1, "success"), _record("train", 0, 2, "success"), _record("train", 0, 1, "failed")]
    lines = records_table(records).splitlines()
    assert [line.split()[:3] for line in lines[2:5]] == [["train[0]", "1", "failed"], ["train[0]", "2", "success"], ["train[1]", "1", "success"]]
    assert "[none]" in lines[2] and "[estimated]" in lines[2]
    assert lines[5].startswith("total: 3 task tries")
    assert lines[6].startswith("intensity: Quebec, Canada") and "[dataset:" in lines[6]
