"""Carbon metrics in Airflow's own StatsD / OpenTelemetry (airflow_carbon.metrics), with real parts: a UDP
StatsD listener and an OTLP/HTTP receiver on loopback (carbon_testing.statsd_sink, .otlp_sink), tracked
DAGs run with dag.test() on the simulated GPU, each metric checked against the try's record."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from airflow_carbon import metrics
from airflow_helpers import run_dag
from carbon_testing.otlp_sink import OtlpSink
from carbon_testing.statsd_sink import StatsdSink, parse_line

GPU_W = 300.0


def _energy_j(record):
    return round(record["energy_kwh"] * 3.6e6)


def _co2_mg(record):
    return round(record["emissions_g"] * 1000)


def _by_task(records):
    return {r["task"]["task_id"]: r for r in records}


@pytest.fixture
def metrics_env(monkeypatch):
    """Set ``[metrics]`` through the environment (as a worker's would be); the module reads it afresh."""
    for name in [k for k in os.environ if k.startswith(("AIRFLOW__METRICS__", "OTEL_"))]:
        monkeypatch.delenv(name)
    metrics.reset()

    def configure(**settings):
        for key, value in settings.items():
            monkeypatch.setenv(key if key.startswith("OTEL_") else f"AIRFLOW__METRICS__{key.upper()}", str(value))

    yield configure
    metrics.reset()


# -- unit: our own StatsD client's lines -------------------------------------------------------------------
RECORD = {"energy_kwh": 0.001, "emissions_g": 0.0567, "duration_s": 10.0, "host": "node-7",
          "task": {"dag_id": "train", "run_id": "r1", "task_id": "grp.fit", "map_index": -1, "try_number": 1,
                   "hostname": "worker-3", "queue": "gpu"}}


def _client(sink, mode="statsd", **options):
    settings = {"prefix": "airflow", "ipv6": False, "tagged": mode == "dogstatsd", "influx": False, "constant_tags": [],
                "disabled_tags": set(), "allowed": metrics._list_filter(None, None), "handler": None, **options}
    return metrics._Statsd(mode, sink.host, sink.port, **settings)


@pytest.mark.unit
def test_plain_statsd_lines_name_the_dag_and_task(monkeypatch):
    with StatsdSink() as sink:
        monkeypatch.setattr(metrics, "_backend", _client(sink))
        metrics.emit_power({**RECORD, "energy_kwh": 0.0005, "duration_s": 5.0})  # 1800 J in 5 s
        metrics.emit_power(RECORD)  # 1800 J more in 5 s
        metrics.emit_try(RECORD)
        got = sink.wait_for(lambda m: m.name.startswith("airflow.carbon.co2_mg"))
        lines = sink.lines()
    assert got[0].line == "airflow.carbon.co2_mg.train.grp__fit:57|c"  # a task group's "." as "__"
    assert lines == ["airflow.carbon.power_w.train.grp__fit:360|g", "airflow.carbon.power_w.train.grp__fit:360|g",
                     "airflow.carbon.energy_j.train.grp__fit:3600|c", "airflow.carbon.co2_mg.train.grp__fit:57|c"]


@pytest.mark.unit
def test_dogstatsd_lines_carry_the_tags_and_the_constant_tags(monkeypatch):
    with StatsdSink() as sink:
        monkeypatch.setattr(metrics, "_backend", _client(sink, "dogstatsd", constant_tags=["env:prod"], disabled_tags={"queue"}))
        metrics.emit_try(RECORD)
        (energy,) = sink.wait_for(lambda m: m.name == "airflow.carbon.energy_j")
        sink.wait_for(lambda m: m.name == "airflow.carbon.co2_mg")
    assert energy.value == 3600 and energy.type == "c"
    assert energy.tags == {"dag_id": "train", "task_id": "grp.fit", "hostname": "worker-3", "env": "prod"}  # queue disabled


@pytest.mark.unit
def test_allow_and_block_lists_and_influxdb_tags(monkeypatch):
    with StatsdSink() as sink:
        monkeypatch.setattr(metrics, "_backend", _client(sink, allowed=metrics._list_filter(None, "co2"), tagged=True, influx=True))
        metrics.emit_try(RECORD)
        sink.wait_for(lambda m: m.name.startswith("airflow.carbon.energy_j"))
        monkeypatch.setattr(metrics, "_backend", _client(sink, allowed=metrics._list_filter("power_w,co2", "co2")))
        metrics.emit_try(RECORD)
        sink.wait_for(lambda m: m.name.startswith("airflow.carbon.co2_mg"))
        lines = sink.lines()
    # influxdb: the tags in the name; the block list drops co2; then the allow list wins over the block list
    assert lines == ["airflow.carbon.energy_j,dag_id=train,task_id=grp.fit,queue=gpu,hostname=worker-3:3600|c",
                     "airflow.carbon.co2_mg.train.grp__fit:57|c"]


@pytest.mark.unit
def test_metrics_off_cost_nothing_and_a_broken_record_is_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(metrics, "_backend", None)  # [metrics] read: off
    metrics.emit_try({})  # not even looked at
    metrics.emit_power({})
    with StatsdSink() as sink:
        monkeypatch.setattr(metrics, "_backend", _client(sink))
        with caplog.at_level(logging.WARNING, logger="airflow_carbon.metrics"):
            for _ in range(3):
                metrics.emit_try({"task": {}})  # no energy: never raises
    assert [r.getMessage() for r in caplog.records].count(
        "airflow-carbon: the try's carbon metrics could not be sent: KeyError('energy_kwh')") == 1
    assert len(caplog.records) == 1


@pytest.mark.unit
def test_statsd_lines_parse():
    line = parse_line("airflow.carbon.power_w:312.5|g|@0.5|#dag_id:d,task_id:t")
    assert (line.name, line.value, line.type, line.rate, line.tags) == ("airflow.carbon.power_w", 312.5, "g", 0.5,
                                                                         {"dag_id": "d", "task_id": "t"})


# -- a real Airflow: dag.test() runs, the metrics against the records --------------------------------------
@pytest.mark.airflow
def test_statsd_counters_and_power_gauges_of_a_checkpointed_try(airflow_dags, fake_gpu, metrics_env):
    fake_gpu(f"count=1; power=const:{GPU_W:g}")
    with StatsdSink() as sink:
        metrics_env(statsd_on=True, statsd_host=sink.host, statsd_port=sink.port)
        run, records = run_dag(airflow_dags, "carbon_metrics")
        assert metrics.backend_name() == "statsd"  # Airflow's Stats is a no-op here: see test_which_client
        for task_id in ("quick", "steady"):
            sink.wait_for(lambda m, task_id=task_id: m.name == f"airflow.carbon.co2_mg.carbon_metrics.{task_id}")
        lines = sink.metrics("airflow.carbon.")
    assert run.state == "success"
    by_task = _by_task(records)
    for task_id, record in by_task.items():
        counters = {m.name: m.value for m in lines if m.type == "c" and m.name.endswith(f".carbon_metrics.{task_id}")}
        assert counters == {f"airflow.carbon.energy_j.carbon_metrics.{task_id}": _energy_j(record),
                            f"airflow.carbon.co2_mg.carbon_metrics.{task_id}": _co2_mg(record)}
    steady = by_task["steady"]
    gauges = [m.value for m in lines if m.name == "airflow.carbon.power_w.carbon_metrics.steady"]
    assert all(m.type == "g" for m in lines if "power_w" in m.name)
    assert len(gauges) == 2  # checkpoints at 1 s and 2 s of a 2.5 s try
    mean_w = steady["energy_kwh"] * 3.6e6 / steady["duration_s"]  # the simulated GPU's 300 W, plus CPU and RAM
    for watts in gauges:
        # the GPU (its counter: whole mJ) is in it; 3 % for the time between reading the clock and the counter
        # on a loaded machine (a thread switch is 5 ms)
        assert 0.97 * GPU_W <= watts == pytest.approx(mean_w, rel=0.05)
    assert not [m for m in lines if m.name.startswith("airflow.carbon.power_w.carbon_metrics.quick")]  # no checkpoint


@pytest.mark.airflow
def test_dogstatsd_tags_every_try(airflow_dags, fake_gpu, metrics_env):
    fake_gpu("count=1; power=const:200")
    with StatsdSink() as sink:
        metrics_env(statsd_datadog_enabled=True, statsd_host=sink.host, statsd_port=sink.port, statsd_prefix="af",
                    statsd_datadog_tags="env:test,team:ml")
        run, records = run_dag(airflow_dags, "carbon_mapped")
        deadline = time.monotonic() + 5
        while len(sink.metrics("af.carbon.")) < 8 and time.monotonic() < deadline:  # UDP: no flush to wait for
            time.sleep(0.02)
        lines = sink.metrics("af.carbon.")
    assert run.state == "success" and metrics.backend_name() == "dogstatsd"
    assert {m.name for m in lines} == {"af.carbon.energy_j", "af.carbon.co2_mg"}  # no suffix: the tags say it
    assert len(lines) == 2 * len(records) == 8  # one of each per try: 3 mapped instances + train_once
    for task_id in ("train", "train_once"):  # a mapped task's instances add up in one tagged counter
        tries = [r for r in records if r["task"]["task_id"] == task_id]
        task = tries[0]["task"]
        tags = {"dag_id": "carbon_mapped", "task_id": task_id, "queue": task["queue"],
                "hostname": task["hostname"] or tries[0]["host"], "env": "test", "team": "ml"}  # + statsd_datadog_tags
        assert task["queue"] == "default" and tags["hostname"]
        mine = [m for m in lines if m.tags["task_id"] == task_id]
        assert mine and all(m.tags == tags and m.type == "c" for m in mine)
        assert sorted(m.value for m in mine if m.name == "af.carbon.energy_j") == sorted(_energy_j(r) for r in tries)
        assert sorted(m.value for m in mine if m.name == "af.carbon.co2_mg") == sorted(_co2_mg(r) for r in tries)


def _otel_settings(sink):
    return {"otel_on": True, "otel_host": sink.host, "otel_port": sink.port, "otel_ssl_active": False}


@pytest.mark.airflow
def test_opentelemetry_counters_and_gauge_leave_as_the_try_ends(airflow_dags, fake_gpu, metrics_env):
    fake_gpu(f"count=1; power=const:{GPU_W:g}")
    with OtlpSink() as sink:
        metrics_env(**_otel_settings(sink))
        run, records = run_dag(airflow_dags, "carbon_metrics")
        points = sink.points()  # no waiting: each try's end flushed its counters (the export interval is 60 s)
        assert sink.paths and set(sink.paths) == {"/v1/metrics"}
    assert run.state == "success" and metrics.backend_name() == "otel"
    by_task = _by_task(records)
    for task_id, record in by_task.items():
        attributes = {"dag_id": "carbon_metrics", "task_id": task_id, "queue": record["task"]["queue"],
                      "hostname": record["task"]["hostname"] or record["host"]}
        mine = [p for p in points if p.attributes == attributes]
        last = {p.name: p for p in mine}  # cumulative sums: the last export has the try's total
        assert last["airflow.carbon.energy_j"].value == _energy_j(record)
        assert last["airflow.carbon.co2_mg"].value == _co2_mg(record)
        for name in ("airflow.carbon.energy_j", "airflow.carbon.co2_mg"):
            assert (last[name].kind, last[name].monotonic, last[name].temporality) == ("sum", True, "cumulative")
            assert last[name].resource["service.name"] == "airflow"
    steady = by_task["steady"]
    gauges = [p for p in points if p.name == "airflow.carbon.power_w"]
    assert gauges and all(p.kind == "gauge" and p.attributes["task_id"] == "steady" and p.attributes["queue"] == "gpu" for p in gauges)
    mean_w = steady["energy_kwh"] * 3.6e6 / steady["duration_s"]
    assert 0.97 * GPU_W <= gauges[-1].value == pytest.approx(mean_w, rel=0.05)  # the last checkpoint's, since the one before


def _replace_global_meter_provider(provider):
    """Set OpenTelemetry's global MeterProvider again (as Airflow's get_otel_logger does); the one replaced."""
    import opentelemetry.metrics._internal as otel_internal
    from opentelemetry import metrics as otel_metrics

    replaced = otel_metrics.get_meter_provider()
    otel_internal._METER_PROVIDER_SET_ONCE._done = False
    otel_metrics.set_meter_provider(provider)
    return replaced


@pytest.mark.airflow
def test_opentelemetry_through_airflows_own_stats_when_it_is_live(airflow_dags, fake_gpu, metrics_env):
    """Where Airflow's Stats is live in the task process (the Task SDK's task_runner.main() initialises it from
    [metrics], as done here), the metrics go through it: Airflow's MeterProvider, beside Airflow's own metrics."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability.metrics import stats_utils
    from opentelemetry.sdk.metrics import MeterProvider

    fake_gpu("count=1; power=const:100")
    with OtlpSink() as sink:
        metrics_env(**_otel_settings(sink), otel_prefix="af3")
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        try:
            assert metrics.backend_name() == "airflow-stats:otel"
            run, records = run_dag(airflow_dags, "carbon_flaky")  # two tries: failed, then success
            points = sink.points()
        finally:  # back to no Stats, and a global MeterProvider without exporter (Airflow flushes it at exit)
            stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
            _replace_global_meter_provider(MeterProvider()).shutdown(timeout_millis=2000)
    assert run.state == "success" and len(records) == 2
    names = {p.name for p in points}
    assert {"af3.carbon.energy_j", "af3.carbon.co2_mg", "af3.ti.finish"} <= names  # beside Airflow's own
    energy = [p for p in points if p.name == "af3.carbon.energy_j"]
    assert {p.attributes["task_id"] for p in energy} == {"flaky"} and all(p.attributes["dag_id"] == "carbon_flaky" for p in energy)
    assert energy[-1].value == sum(_energy_j(r) for r in records)  # Airflow's cumulative counter: both tries


@pytest.mark.airflow
def test_a_failing_metrics_backend_never_fails_the_task(airflow_dags, fake_gpu, metrics_env, caplog):
    fake_gpu("count=1; power=const:100")
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there
    metrics_env(statsd_on=True, statsd_host="127.0.0.1", statsd_port=port)
    run, records = run_dag(airflow_dags, "carbon_flaky")
    assert run.state == "success" and [r["status"] for r in records] == ["failed", "success"]

    metrics.reset()
    with OtlpSink(status=500) as sink, caplog.at_level(logging.WARNING):
        metrics_env(statsd_on=False, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT=1, **_otel_settings(sink))
        run, records = run_dag(airflow_dags, "carbon_flaky")
        assert sink.failed_requests and not sink.requests  # the collector was asked, and refused
    assert run.state == "success" and [r["status"] for r in records] == ["failed", "success"]
    ours = [r for r in caplog.records if "carbon metrics could not be exported" in r.getMessage()]
    assert len(ours) == 1
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]  # quiet: ours is the one warning
