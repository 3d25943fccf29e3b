"""TaskTracker's bookkeeping of tries around the task state store.

A try killed outright (OOM, worker lost) cannot be produced inside dag.test(), which runs tasks in the
test process; this drives TaskTracker directly, with a dict-backed stand-in for the state store
accessor (its get/set interface) and a plain task-instance object.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from airflow_carbon import validate_record
from airflow_carbon.core.aggregate import task_summary
from airflow_carbon.settings import CarbonSettings
from airflow_carbon.task_tracking import TaskTracker
from airflow_carbon.xcom import STATE_KEY, XCOM_KEY, records_in

pytestmark = pytest.mark.airflow


class _Store:
    def __init__(self):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value, *, retention=None):
        import json

        self.data[key] = json.loads(json.dumps(value))  # what the real store keeps: JSON


def _ti(try_number, pushed):
    return SimpleNamespace(
        dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=try_number, hostname="h",
        task=SimpleNamespace(queue="gpu"), xcom_push=lambda key, value: pushed.append((key, value)),
    )


def test_a_killed_try_keeps_its_last_checkpoint_and_is_marked_interrupted(fake_gpu):
    fake_gpu("count=1; power=const:200")
    store, pushed = _Store(), []
    settings = CarbonSettings(location="FR", checkpoint_interval_s=1)
    first = TaskTracker(settings, {"ti": _ti(1, pushed), "task_state_store": store})
    first.start()
    time.sleep(1.4)
    first.meter.stop()  # the process dies here: finish() never runs; its last checkpoint is in the store
    (checkpoint,) = store.get(STATE_KEY)
    assert checkpoint["status"] == "running" and checkpoint["gpus"][0]["energy_j"] > 0

    second = TaskTracker(settings, {"ti": _ti(2, pushed), "task_state_store": store})
    second.start()
    records = second.finish("success")
    assert [(r["task"]["try_number"], r["status"]) for r in records] == [(1, "interrupted"), (2, "success")]
    assert "killed" in records[0]["warnings"][-1]
    (key, value), = pushed  # one write: the second try's (the killed one never pushed)
    assert key == XCOM_KEY and value["summary"] == task_summary(records) and records_in(value) == records
    summary = pushed[-1][1]["summary"]
    assert summary["tries"] == 2 and summary["status"] == "success"  # the UI's totals count the killed try
    for record in records:
        validate_record(record)


def test_no_state_store_still_pushes_this_tries_record(fake_gpu):
    fake_gpu("count=1")
    pushed = []
    tracker = TaskTracker(CarbonSettings(location="FR"), {"ti": _ti(1, pushed)})
    tracker.start()
    (record,) = tracker.finish("failed")
    (key, value), = pushed
    assert record["status"] == "failed" and key == XCOM_KEY and records_in(value) == [record]
    assert value["summary"] == task_summary([record])


def _try(settings, n, store, pushed, status):
    tracker = TaskTracker(settings, {"ti": _ti(n, pushed), "task_state_store": store})
    tracker.start()
    return tracker.finish(status)


def test_a_failed_try_is_kept_for_its_retry_and_a_successful_one_is_written_once(fake_gpu):
    """One write at the end of a successful try (its XCom); a failed try also goes to the store, where its retry
    finds it: the retry's XCom holds both tries."""
    fake_gpu("count=1; power=const:200")
    store, pushed = _Store(), []
    settings = CarbonSettings(location="FR")
    (first,) = _try(settings, 1, store, pushed, "failed")
    assert first["status"] == "failed"
    assert [r["task"]["try_number"] for r in store.get(STATE_KEY)] == [1]
    records = _try(settings, 2, store, pushed, "success")
    assert [(r["task"]["try_number"], r["status"]) for r in records] == [(1, "failed"), (2, "success")]
    assert [r["task"]["try_number"] for r in store.get(STATE_KEY)] == [1]  # the success was not written there
    assert [key for key, _ in pushed] == [XCOM_KEY, XCOM_KEY]
    assert records_in(pushed[-1][1]) == records and pushed[-1][1]["summary"]["failed_tries"] == 1
    assert not any("without a record" in w for w in records[-1]["warnings"])


@pytest.mark.parametrize("keep", [False, True])
def test_a_cleared_successful_try_is_kept_with_keep_records_on_clear_and_said_missing_without(fake_gpu, keep):
    fake_gpu("count=1; power=const:200")
    store, pushed = _Store(), []
    settings = CarbonSettings(location="FR", keep_records_on_clear=keep)
    _try(settings, 1, store, pushed, "success")
    # the task instance is cleared: Airflow deletes try 1's XCom when try 2 starts; the store survives
    records = _try(settings, 2, store, pushed, "success")
    if keep:
        assert [(r["task"]["try_number"], r["status"]) for r in records] == [(1, "success"), (2, "success")]
        assert not any("without a record" in w for w in records[-1]["warnings"])
    else:
        assert [r["task"]["try_number"] for r in records] == [2]
        assert any(w.startswith("earlier tries without a record: 1 ") and "keep_records_on_clear" in w
                   for w in records[-1]["warnings"])
