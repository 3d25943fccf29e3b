"""Live grid intensity in a real Airflow: mapped tries under dag.test() take their grams from local
simulators of the sources' APIs (real HTTP on loopback), the Connections given as AIRFLOW_CONN_* variables,
as a user would; the records, the XComs and the task logs are read back."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from airflow_carbon.core.sources.http import unix_s
from airflow_helpers import run_dag
from carbon_testing.gridsim import ElectricityMapsSim, UKCarbonIntensitySim, WattTimeSim

pytestmark = pytest.mark.airflow

EM_TOKEN = "em-secret-token-3f9a"
WT_PASSWORD = "wt-secret-password-77c1"
STEP_S = 2.0  # the simulated GB API's intervals: a 2.5 s try crosses at least one boundary


def _run(airflow_dags, dag_id):
    run, records = run_dag(airflow_dags, dag_id)
    return run, {(r["task"]["task_id"], r["task"]["map_index"]): r for r in records}


def test_mapped_tries_take_their_grams_from_the_hours_they_ran(airflow_dags, fake_gpu, cache_dir, monkeypatch):
    fake_gpu("count=1; power=const:300")
    now = time.time()
    first = now - now % STEP_S
    series = {first + STEP_S * n: 100.0 + 40 * n for n in range(-2, 120)}  # rises every interval
    with UKCarbonIntensitySim(series, interval_s=STEP_S) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_UK_CARBON_INTENSITY_DEFAULT", json.dumps({"conn_type": "uk_carbon_intensity", "host": sim.url}))
        run, records = _run(airflow_dags, "carbon_live")
    assert run.state == "success"
    assert set(records) == {("train", 0), ("train", 1), ("train", 2)}
    for record in records.values():
        i = record["intensity"]
        assert i["method"] == "live" and i["live_source"] == "uk_carbon_intensity" and i["conn_id"] == "uk_carbon_intensity_default"
        assert i["signal"] == "average" and i["emission_factor"] == "direct" and "operational" in i["source"]
        assert "fallback" not in i
        segments = i["segments"]
        # the segments tile the try, each inside one of the source's intervals, at that interval's figure
        assert unix_s(segments[0]["start"]) == pytest.approx(unix_s(record["started_at"]), abs=0.01)
        assert unix_s(segments[-1]["end"]) == pytest.approx(unix_s(record["ended_at"]), abs=0.01)
        for a, b in itertools.pairwise(segments):
            assert a["end"] == b["start"]
        for s in segments:
            start = unix_s(s["start"])
            interval = start - (start - first) % STEP_S
            assert s["g_per_kwh"] == series[round(interval, 3)] and unix_s(s["end"]) <= interval + STEP_S + 0.001
        assert sum(s["energy_kwh"] for s in segments) == pytest.approx(record["energy_kwh"], rel=1e-9)
        grams = sum(s["energy_kwh"] * s["g_per_kwh"] for s in segments) * record["pue"]
        assert record["emissions_g"] == pytest.approx(grams, rel=1e-9)
        assert i["g_per_kwh"] == pytest.approx(grams / record["pue"] / record["energy_kwh"], rel=1e-9)
    long_try = records[("train", 0)]["intensity"]["segments"]
    assert len(long_try) >= 2 and len({s["g_per_kwh"] for s in long_try}) >= 2  # crossed a boundary: both figures used
    # three tries on one host: the cache answered all but the first lookup of each interval
    assert len(sim.requests) <= 3


def test_failures_fall_back_to_the_bundled_figure_and_say_why(airflow_dags, fake_gpu, cache_dir, monkeypatch, capfd):
    fake_gpu("count=1; power=const:200")
    hour = time.time() // 3600 * 3600
    em = ElectricityMapsSim({"FR": {hour - 3600 * n: 30.0 + n for n in range(24)}}, token="another-token", now_s=time.time())
    wt = WattTimeSim({"CAISO_NORTH": [900.0] * 288}, username="alice", password="not-" + WT_PASSWORD, now_s=time.time())
    with em, wt:
        monkeypatch.setenv("AIRFLOW_CONN_ELECTRICITYMAPS_DEFAULT", json.dumps({"conn_type": "electricitymaps", "host": em.url, "password": EM_TOKEN}))
        monkeypatch.setenv("AIRFLOW_CONN_WATTTIME_DEFAULT", json.dumps({"conn_type": "watttime", "host": wt.url, "login": "alice", "password": WT_PASSWORD}))
        run, records = _run(airflow_dags, "carbon_live_sources")
    out = capfd.readouterr()
    assert run.state == "success"  # a refused token never fails the task
    fr = records[("fr", -1)]["intensity"]
    assert fr["method"] == "dataset" and fr["location"] == "FR" and fr["g_per_kwh"] > 0
    assert fr["fallback"] == "electricitymaps: HTTP 401: credentials refused (credentials from Connection 'electricitymaps_default')"
    ca = records[("california", -1)]["intensity"]
    assert ca["fallback"].startswith("watttime: HTTP 403: credentials refused") and ca["location"] == "US-CA"
    missing = records[("missing", -1)]["intensity"]
    assert "no_such_connection" in missing["fallback"] and missing["method"] == "dataset" and "live_source" not in missing
    explicit = records[("explicit", -1)]["intensity"]
    assert explicit["method"] == "explicit" and explicit["g_per_kwh"] == 12.0 and "fallback" not in explicit
    for key in ("fr", "california", "missing"):
        record = records[(key, -1)]
        assert sum("grid intensity" in w and "bundled figure" in w for w in record["warnings"]) == 1  # one warning a try
    text = json.dumps(list(records.values())) + out.out + out.err
    assert EM_TOKEN not in text and WT_PASSWORD not in text
