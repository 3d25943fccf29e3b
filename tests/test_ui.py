"""The UI plugin through a real ``airflow api-server`` (carbon_testing.ui_server): authentication, DAG-level
access, the figures of every view against the records real dag.test() runs left in the metadata DB,
CSV/JSON downloads, escaping. The same views in Chromium, inside Airflow's UI: test_ui_browser.py."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from markupsafe import escape

from conftest import HOSTILE

pytestmark = pytest.mark.airflow


def _records(dag_id: str, run_id: str) -> list[dict]:
    from airflow.utils.session import create_session

    from airflow_carbon.xcom import run_records

    with create_session() as session:
        return run_records(dag_id, run_id, session)


def _dag_records(dag_id: str) -> list[dict]:
    """Every record of every run of the DAG (other tests of the session run these DAGs too)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_carbon.xcom import XCOM_KEY, records_in

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.key == XCOM_KEY))
        return [r for x in xcoms for r in records_in(XComModel.deserialize_value(x))]


def _runs(dag_id: str) -> int:
    return len({r["task"]["run_id"] for r in _dag_records(dag_id)})


def _q(text: str) -> str:
    return quote(text, safe="")


def _paths(dag_id: str, run_id: str) -> list[str]:
    run = f"/carbon/dags/{dag_id}/runs/{_q(run_id)}"
    api = f"/carbon/api/dags/{dag_id}/runs/{_q(run_id)}"
    return [f"/carbon/dags/{dag_id}", run, f"{run}/tasks/train?map_index=0",
            f"/carbon/api/dags/{dag_id}", api, f"{api}?download=csv", f"{api}/tasks/train?map_index=0"]


def test_the_plugin_registers_the_app_and_a_view_for_each_place(ui):
    plugins = ui.server.get("/api/v2/plugins").json()["plugins"]
    carbon = next(p for p in plugins if p["name"] == "carbon")
    assert [a["url_prefix"] for a in carbon["fastapi_apps"]] == ["/carbon"]
    assert {v["destination"]: v["url_route"] for v in carbon["external_views"]} == {
        "nav": "carbon", "dag": "carbon-dag", "dag_run": "carbon-run", "task_instance": "carbon-task"}


def test_importing_the_plugin_does_not_build_the_ui():
    code = ("import sys, airflow_carbon.plugins.carbon; "
            "print(sorted(m for m in sys.modules if m.startswith('airflow_carbon.ui')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing the plugin loaded {out.strip()}"


def test_anonymous_and_forged_requests_see_nothing(ui):
    for path in ["/carbon/", "/carbon/api/overview", *_paths("carbon_card_local", ui.card_run)]:
        anonymous = ui.server.get(path, user=None)
        assert anonymous.status_code == 401, f"{path}: {anonymous.status_code}"
        assert "carbon_card_local" not in anonymous.text and "emissions_g" not in anonymous.text
        forged = ui.server.get(path, user=None, headers={"Authorization": "Bearer not.a.jwt"})
        assert forged.status_code in (401, 403), f"{path}: {forged.status_code}"
    page = ui.server.get("/carbon/", user=None)
    assert "Log in to Airflow" in page.text  # a person gets a way in, not a stack trace


def test_the_overview_totals_equal_the_records(ui):
    data = ui.server.get("/carbon/api/overview?period=all").json()
    dags = {d["dag_id"]: d for d in data["dags"]}
    assert {"carbon_card_local", "carbon_mapped"} <= set(dags)
    for dag_id in ["carbon_card_local", "carbon_mapped"]:
        records = _dag_records(dag_id)
        assert math.isclose(dags[dag_id]["emissions_g"], sum(r["emissions_g"] for r in records), rel_tol=1e-9)
        assert math.isclose(dags[dag_id]["energy_kwh"], sum(r["energy_kwh"] for r in records), rel_tol=1e-9)
        assert dags[dag_id]["tries"] == len(records) and dags[dag_id]["runs"] == _runs(dag_id)
    assert math.isclose(data["totals"]["emissions_g"], sum(d["emissions_g"] for d in dags.values()), rel_tol=1e-9)
    assert math.isclose(sum(d["emissions_g"] for d in data["days"]), data["totals"]["emissions_g"], rel_tol=1e-9)
    # sortable: by DAG id ascending
    ids = [d["dag_id"] for d in ui.server.get("/carbon/api/overview?period=all&sort=dag_id&order=asc").json()["dags"]]
    assert ids == sorted(ids)
    page = ui.server.get("/carbon/?period=all")
    assert page.status_code == 200 and "carbon_card_local" in page.text and "<svg" in page.text


def test_a_user_limited_to_one_dag_sees_nothing_of_the_others(ui):
    data = ui.server.get("/carbon/api/overview?period=all", user="alice").json()
    assert [d["dag_id"] for d in data["dags"]] == ["carbon_mapped"]
    mapped = _dag_records("carbon_mapped")
    assert math.isclose(data["totals"]["emissions_g"], sum(r["emissions_g"] for r in mapped), rel_tol=1e-9)
    overview = ui.server.get("/carbon/?period=all", user="alice")
    assert overview.status_code == 200 and "carbon_card_local" not in overview.text
    assert "carbon_card_local" not in ui.server.get("/carbon/api/overview?period=all&download=csv", user="alice").text
    missing = ui.server.get("/carbon/api/dags/no_such_dag", user="alice")
    for path in _paths("carbon_card_local", ui.card_run):
        hidden = ui.server.get(path, user="alice")
        assert hidden.status_code == 404, f"{path}: {hidden.status_code}"
        if "/api/" in path:  # indistinguishable from a DAG that does not exist
            assert hidden.json() == missing.json()
        assert "emissions" not in hidden.text.replace("Carbon emissions", "")
    assert ui.server.get(_paths("carbon_mapped", ui.mapped_run)[0], user="alice").status_code == 200


def test_the_run_view_shows_every_task_try_and_the_model_card(ui):
    records = _records("carbon_card_local", ui.card_run)
    data = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}").json()
    rows = {(t["task_id"], t["map_index"], t["try_number"]): t for t in data["tasks"]}
    assert set(rows) == {(r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"]) for r in records}
    assert rows[("train", 0, 1)]["status"] == "failed" and rows[("train", 0, 2)]["status"] == "success"
    assert math.isclose(data["totals"]["emissions_g"], sum(r["emissions_g"] for r in records), rel_tol=1e-9)
    assert {(ti["task_id"], ti["map_index"], ti["tries"]) for ti in data["task_instances"]} == {("train", 0, 2), ("train", 1, 1)}
    assert [i["name"] for i in data["intensity"]] == ["Quebec, Canada"] and data["intensity"][0]["source"]
    assert all(t["methods"]["gpu"] == "counter" for t in data["tasks"])
    (card,) = data["model_cards"]
    assert card["task_id"] == "publish" and card["co2_eq_emissions"]["emissions"] == pytest.approx(data["totals"]["emissions_g"], rel=1e-5)
    page = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}").text
    assert page.count('<tr class="failed"') == 1 and "Model card" in page and "Quebec, Canada" in page
    assert "seg-gpu" in page and "seg-cpu" in page  # the stacked per-task chart


def test_the_task_instance_view_has_the_full_record(ui):
    records = [r for r in _records("carbon_card_local", ui.card_run) if r["task"]["task_id"] == "train" and r["task"]["map_index"] == 0]
    data = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}/tasks/train?map_index=0").json()
    assert data["records"] == sorted(records, key=lambda r: r["task"]["try_number"])
    page = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}/tasks/train?map_index=0").text
    assert 'id="try-1"' in page and 'id="try-2"' in page
    assert "150 W" in page and "counter" in page  # mean/peak power and how the GPU energy was obtained
    # Airflow's tab URL of an unmapped task keeps the {MAP_INDEX} placeholder
    unmapped = ui.server.get(f"/carbon/api/dags/carbon_mapped/runs/{_q(ui.mapped_run)}/tasks/train_once?map_index={{MAP_INDEX}}").json()
    assert unmapped["map_index"] == -1 and len(unmapped["records"]) == 1


def test_downloads_use_codecarbon_columns_and_units(ui):
    from airflow_carbon.core.export import CODECARBON_COLUMNS

    records = _records("carbon_card_local", ui.card_run)
    response = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}?download=csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == CODECARBON_COLUMNS and len(rows) == len(records)
    assert math.isclose(sum(float(r["emissions"]) for r in rows), sum(r["emissions_g"] for r in records) / 1000, rel_tol=1e-9)
    as_json = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}?download=json")
    assert "attachment" in as_json.headers["content-disposition"] and json.loads(as_json.text)["run_id"] == ui.card_run


def test_the_dag_view_lists_its_runs(ui):
    data = ui.server.get("/carbon/api/dags/carbon_mapped?period=all").json()
    run = next(r for r in data["runs"] if r["run_id"] == ui.mapped_run)
    records = _records("carbon_mapped", ui.mapped_run)
    assert math.isclose(run["emissions_g"], sum(r["emissions_g"] for r in records), rel_tol=1e-9)
    assert run["state"] == "success" and run["task_instances"] == 4 and "NVIDIA" in run["hardware_used"]
    untracked = ui.server.get("/carbon/dags/carbon_card_nothing?period=all").text
    assert "@task.carbon" in untracked  # the empty state says what to do


@pytest.mark.parametrize("shape", ["0.3.x", "0.4.0"])
def test_runs_recorded_by_earlier_releases_are_summed_once_beside_newer_ones(ui, live_run, airflow_dags, shape):
    """0.3.x pushed the records' list and, apart, their summary (XCom carbon_summary); 0.4.0 one value with the
    records as a list: after an upgrade, their runs count as before, each task instance once, beside the runs
    of 0.5.0's one XCom (the records as JSON text)."""
    older = airflow_dags.get_dag(LIVE_DAG).test(run_conf={"records": live_run.tries, "xcom_shape": shape})
    runs = {r["run_id"]: r for r in ui.server.get(f"/carbon/api/dags/{LIVE_DAG}?period=all&limit=1000").json()["runs"]}
    new, old = runs[live_run.run_id], runs[older.run_id]
    expected = sum(r["emissions_g"] for r in _records(LIVE_DAG, older.run_id))
    assert math.isclose(old["emissions_g"], expected, rel_tol=1e-9) and old["task_instances"] == 3
    for key in ("emissions_g", "energy_kwh", "gpu_kwh", "tries", "failed_tries", "task_instances"):
        assert old[key] == pytest.approx(new[key], rel=1e-9), (key, old[key], new[key])
    assert old["hardware_used"] == new["hardware_used"] != ""
    assert _records(LIVE_DAG, older.run_id) and len(_records(LIVE_DAG, older.run_id)) == len(_records(LIVE_DAG, live_run.run_id))


def test_tracked_task_instances_link_to_their_carbon_tab_and_others_have_no_link(ui):
    """The "Carbon emissions" extra link, as Airflow's UI asks the API server for a task instance's links."""
    run = quote(ui.card_run, safe="")

    def links(task_id: str, map_index: int = -1) -> dict:
        response = ui.server.get(f"/api/v2/dags/carbon_card_local/dagRuns/{run}/taskInstances/{task_id}/links?map_index={map_index}")
        assert response.status_code == 200, response.text
        return response.json()["extra_links"]

    # the task instance's "Carbon" tab inside Airflow's UI (the UI plugin's view)
    assert links("train", 1)["Carbon emissions"] == f"/dags/carbon_card_local/runs/{run}/tasks/train/mapped/1/plugin/carbon-task"
    assert links("untracked").get("Carbon emissions") is None  # left out by Airflow's UI
    assert links("publish").get("Carbon emissions") is None


def _overview(ui) -> dict:
    data = ui.server.get("/carbon/api/overview?period=all").json()
    return {d["dag_id"]: (round(d["emissions_g"], 15), d["tries"], d["runs"], d["task_instances"]) for d in data["dags"]}


def test_finished_runs_are_summed_from_the_summary_table_which_rebuilds_from_xcom(ui):
    """The scheduler stores each finished run's totals in carbon_run_summary (here: dag.test()'s runs); the
    UI sums that table; `airflow-carbon summaries rebuild` refills it from XCom, to the same figures."""
    from airflow.utils.session import create_session
    from sqlalchemy import delete, func, select

    from airflow_carbon.models.summary import run_summary_table as t

    shown = _overview(ui)
    with create_session() as session:
        stored = session.execute(select(func.count(), func.sum(t.c.task_instances)).where(t.c.dag_id == "carbon_mapped")).one()
        assert tuple(stored) == (shown["carbon_mapped"][2], shown["carbon_mapped"][3])  # a row a run
        session.execute(delete(t))
    assert "carbon_mapped" not in _overview(ui)  # finished runs are read from the table alone
    out = subprocess.run([sys.executable, "-m", "airflow_carbon.cli", "summaries", "rebuild"], capture_output=True, text=True)
    assert out.returncode == 0 and "finished runs of every DAG summed from XCom into carbon_run_summary" in out.stdout, out
    assert _overview(ui) == shown


def test_a_run_that_runs_again_is_read_from_its_xcoms_until_it_ends(ui):
    """A cleared run goes back to running: the scheduler drops its rows (on_dag_run_running) and the UI sums its
    XComs' summaries instead, each task instance once."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    from airflow_carbon.models import summary

    shown = _overview(ui)
    with create_session() as session:
        run_pk = session.scalar(select(DagRun.id).where(DagRun.run_id == ui.mapped_run))
        session.execute(update(DagRun).where(DagRun.id == run_pk).values(state="running"))
        summary.forget_run(session, run_pk)
    try:
        assert _overview(ui) == shown
    finally:
        with create_session() as session:
            session.execute(update(DagRun).where(DagRun.id == run_pk).values(state="success"))
            summary.store_run(session, run_pk)
    assert _overview(ui) == shown


def test_text_from_workers_and_ids_render_as_text(ui):
    for path in [f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}",
                 f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}/tasks/train?map_index=0", "/carbon/dags/carbon_card_local?period=all"]:
        page = ui.server.get(path).text
        assert HOSTILE not in page, path
        assert "&lt;script&gt;alert(" in page, path


def test_ids_are_escaped_in_every_template():
    """Airflow refuses such DAG ids, but a DAG id, run id, task id or warning never reaches a page as markup."""
    from airflow_carbon.ui.app import _templates

    class Links:
        airflow = app = ""
        dag = run = task = page = api = staticmethod(lambda *a, **k: "/x")

    record = json.loads(json.dumps(_records_for_template()))
    record["task"].update(dag_id=HOSTILE, run_id=HOSTILE, task_id=HOSTILE)
    record["warnings"] = [HOSTILE]
    record["shift"] = {**_shift(record, "09:59:00", "10:00:00", deferred=True, now_g=400.0, planned_g=100.0, avoided="computed", reason=HOSTILE),
                       "forecast_source": HOSTILE, "avoided_basis": HOSTILE, "expected_duration_from": HOSTILE}
    record["budget"] = _budget(record, co2_g=0.0, energy_kwh=None, action="stop", on_exceeded="stop")
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.ui.views import acting_run_totals, try_row

    acting = {"avoided_g": -1.0, "carbon_aware_task_instances": 2, "avoided_known_task_instances": 1, "budgets_exceeded": 1}
    data = {"dag_id": HOSTILE, "run_id": HOSTILE, "task_id": HOSTILE, "map_index": -1, "state": "success", "run_after": None,
            "totals": {"emissions_g": 1.0, "energy_kwh": 1.0, "energy_kwh_by_component": {"gpu": 0, "cpu": 1, "ram": 0}, "tries": 1, "failed_tries": 0,
                       "gpu_kwh": 0.0, "cpu_kwh": 1.0, "ram_kwh": 0.0, "dags": 1, "runs": 1, "task_instances": 1, **acting,
                       **acting_run_totals([record])},
            "task_instances": [], "tasks": [try_row(record)], "intensity": [], "model_cards": [{"task_id": HOSTILE, "location": HOSTILE, "changed": True, "co2_eq_emissions": {"source": HOSTILE}}],
            "records": [record], "summary": task_summary([record]), "acting": acting_run_totals([record]), "period": "all", "total_runs": 1,
            "runs": [{"run_id": HOSTILE, "run_after": None, "state": HOSTILE, "energy_kwh": 1.0, "emissions_g": 1.0, "task_instances": 1, "tries": 1,
                      "failed_tries": 0, "hardware_used": HOSTILE, **acting}],
            "dags": [{"dag_id": HOSTILE, "emissions_g": 1.0, "energy_kwh": 1.0, "runs": 1, "task_instances": 1, "tries": 1, "failed_tries": 0,
                      "last_seen": None, **acting}], "sort": "dag_id", "order": "asc"}
    for name in ["run.html", "task.html", "dag.html", "overview.html", "error.html"]:
        html = _templates().get_template(name).render(links=Links(), data=data, chart="", periods=[], json_url="/j", csv_url="/c",
                                                      json_download="/d", status=404, detail=HOSTILE, login=None)
        assert HOSTILE not in html and "&lt;script&gt;" in html, name
        if name in ("run.html", "task.html"):  # the carbon-aware start's reason, and the budget, are on them
            assert "shift-reason" in html and "budget exceeded: stopped" in html and html.count("&lt;script&gt;") >= 3, name


def _records_for_template() -> dict:
    from airflow_carbon import EnergyMeter

    with EnergyMeter(location="FR") as meter:
        pass
    record = meter.record
    record["task"] = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1, "hostname": "h"}
    record["status"] = "success"
    return record


def test_bad_parameters_are_named_with_what_is_accepted(ui):
    response = ui.server.get("/carbon/api/overview?period=1y")
    assert response.status_code == 400 and "'1y'" in response.json()["detail"] and "7d, 30d, 90d, all" in response.json()["detail"]
    response = ui.server.get(f"/carbon/api/dags/carbon_mapped/runs/{_q(ui.mapped_run)}/tasks/train?map_index=first")
    assert response.status_code == 400 and "'first'" in response.json()["detail"]
    page = ui.server.get("/carbon/?sort=colour")
    assert page.status_code == 400 and "colour" in page.text and "emissions_g" in page.text


def test_a_forged_record_is_left_out_and_said_so(ui):
    run = f"dags/carbon_card_bad_record/runs/{_q(ui.forged_run)}"
    data = ui.server.get(f"/carbon/api/{run}").json()
    assert data["tasks"] == [] and data["totals"] is None
    assert len(data["rejected"]) == 1 and data["rejected"][0].startswith("forged: item 0") and "'started_at' is a required property" in data["rejected"][0]
    page = ui.server.get(f"/carbon/{run}")
    assert page.status_code == 200 and "not airflow-carbon records" in page.text and "forged: item 0" in page.text
    task = ui.server.get(f"/carbon/api/{run}/tasks/forged").json()
    assert task["records"] == [] and len(task["rejected"]) == 1


# -- live grid intensity: where each try's g/kWh came from, the fallback, the run's g/kWh over time ----
LIVE_DAG = "carbon_ui_live"
GB_FAILURE = "uk_carbon_intensity: HTTP 500: Internal Server Error"
WT_FAILURE = "watttime: HTTP 401: credentials refused (credentials from Connection 'watttime_default')"
LIVE_SOURCES = {  # (task_id, try) -> what the run's and the task's pages say of its intensity
    ("train_fr", 1): "live: Electricity Maps, zone FR (average, lifecycle)",
    ("train_gb", 1): "live: GB Carbon Intensity (operational)",
    ("train_ca", 2): "live: WattTime, CAISO_NORTH (marginal)",
}
FALLBACKS = {("train_gb", 1): GB_FAILURE, ("train_ca", 1): WT_FAILURE}




def _segment(start: str, end: str, kwh: float, g_per_kwh: float, source: str, estimated: bool = False) -> dict:
    return {"start": f"2026-12-03T{start}:00.000Z", "end": f"2026-12-03T{end}:00.000Z", "energy_kwh": kwh, "g_per_kwh": g_per_kwh,
            "source": source, "estimated": estimated, "energy_estimated": False}


def _bundled(location: str) -> dict:
    from airflow_carbon.core.intensity import lookup_location

    return lookup_location(location).to_dict()


def _live(location: str, live_source: str, zone: str | None, signal: str, factor: str, source: str, segments: list[dict],
          fallback: str | None = None) -> dict:
    """A live intensity as the meter writes it: its g/kWh the segments' energy-weighted mean."""
    bundled = _bundled(location)
    intensity = {
        "g_per_kwh": sum(s["energy_kwh"] * s["g_per_kwh"] for s in segments) / sum(s["energy_kwh"] for s in segments),
        "location": bundled["location"], "name": bundled["name"], "source": source, "year": None, "license": "terms",
        "method": "live", "emission_factor": factor, "zone": zone, "signal": signal, "live_source": live_source,
        "conn_id": f"{live_source}_default", "segments": segments,
    }
    if fallback is not None:
        intensity["fallback"] = fallback
    return intensity


def _measured_at(base: dict, intensity: dict, status: str = "success", start: str = "10:00", end: str = "10:05",
                 kwh: float = 0.01) -> dict:
    """A copy of ``base`` (a real meter record) measured at ``intensity``: the window, energy (all CPU) and
    grams its segments say (or ``start`` to ``end`` and ``kwh`` when it has none)."""
    from airflow_carbon.ui.charts import instant_s

    record = json.loads(json.dumps(base))
    record.pop("task", None)
    segments = intensity.get("segments") or []
    if segments:
        kwh = sum(s["energy_kwh"] for s in segments)
        started_at, ended_at = segments[0]["start"], segments[-1]["end"]
        grams = sum(s["energy_kwh"] * s["g_per_kwh"] for s in segments) * record["pue"]
    else:
        started_at, ended_at = f"2026-12-03T{start}:00.000Z", f"2026-12-03T{end}:00.000Z"
        grams = kwh * intensity["g_per_kwh"] * record["pue"]
    record.update(started_at=started_at, ended_at=ended_at, duration_s=instant_s(ended_at) - instant_s(started_at),
                  energy_kwh=kwh, emissions_g=grams, status=status, intensity=intensity)
    record["components"]["cpu"]["energy_kwh"], record["components"]["ram"]["energy_kwh"] = kwh, 0.0
    return record


def _live_tries(base: dict) -> dict[str, list[dict]]:
    """Per task of carbon_ui_live, its tries' records: Electricity Maps for FR (the last hour a forecast);
    the GB API, lost after an hour (its last 10 min at the bundled figure); WattTime refusing the credentials
    on the first try (all of it at the bundled figure), answering on the second."""
    gb, ca = _bundled("GB"), _bundled("US-CA")
    fr = _live("FR", "electricitymaps", "FR", "average", "lifecycle", "Electricity Maps, zone FR", [
        _segment("10:00", "11:00", 0.04, 52.0, "electricitymaps:FR"),
        _segment("11:00", "11:20", 0.015, 61.0, "electricitymaps:FR", estimated=True)])
    uk = _live("GB", "uk_carbon_intensity", None, "average", "direct", "GB Carbon Intensity API (NESO), operational (combustion-only)", [
        _segment("10:00", "10:30", 0.02, 212.0, "uk_carbon_intensity"),
        _segment("10:30", "11:00", 0.02, 190.0, "uk_carbon_intensity"),
        _segment("11:00", "11:10", 0.007, gb["g_per_kwh"], gb["source"], estimated=True)], fallback=GB_FAILURE)
    refused = {**ca, "zone": "CAISO_NORTH", "live_source": "watttime", "conn_id": "watttime_default", "fallback": WT_FAILURE}
    wt = _live("US-CA", "watttime", "CAISO_NORTH", "marginal", "direct", "WattTime (marginal MOER), zone CAISO_NORTH", [
        _segment("10:06", "10:10", 0.004, 410.0, "watttime:CAISO_NORTH"),
        _segment("10:10", "10:15", 0.005, 395.0, "watttime:CAISO_NORTH")])
    return {"train_fr": [_measured_at(base, fr)], "train_gb": [_measured_at(base, uk)],
            "train_ca": [_measured_at(base, refused, status="failed"), _measured_at(base, wt)]}


def run_live_dag(airflow_dags) -> SimpleNamespace:
    """A run of carbon_ui_live (tests/dags/carbon_ui_live_dags.py) over :func:`_live_tries`' records: its
    ``run_id`` and ``tries`` (task id -> its tries' records, without the task identity)."""
    tries = _live_tries(_records_for_template())
    run = airflow_dags.get_dag(LIVE_DAG).test(run_conf={"records": tries})
    return SimpleNamespace(run_id=run.run_id, tries=tries)


@pytest.fixture(scope="module")
def live_run(ui, airflow_dags):
    return run_live_dag(airflow_dags)


def _run_json(ui, run_id: str) -> dict:
    return ui.server.get(f"/carbon/api/dags/{LIVE_DAG}/runs/{_q(run_id)}").json()


def _try_rows(html: str) -> dict[tuple[str, int], str]:
    """The run page's rows of the tries table, by (task id, try)."""
    import re

    rows = re.findall(r'<tr class="\w+" data-task-id="([^"]+)" data-map-index="-?\d+" data-try="(\d+)">(.*?)</tr>', html, re.S)
    return {(t, int(n)): body for t, n, body in rows}


def test_the_run_says_where_each_try_s_intensity_came_from_and_which_fell_back(ui, live_run):
    from airflow_carbon.core.intensity import lookup_location

    data = _run_json(ui, live_run.run_id)
    assert data["rejected"] == [] and len(data["tasks"]) == 4
    ca = lookup_location("US-CA")
    bundled = f"bundled: {ca.name} ({ca.source}, {ca.year})"
    expected = {**LIVE_SOURCES, ("train_ca", 1): bundled}
    rows = {(t["task_id"], t["try_number"]): t for t in data["tasks"]}
    assert {k: t["intensity_source"] for k, t in rows.items()} == expected
    assert {k: t["fallback"] for k, t in rows.items() if t["fallback"]} == FALLBACKS
    assert rows[("train_ca", 1)]["intensity_method"] == "dataset" and rows[("train_ca", 1)]["conn_id"] == "watttime_default"
    records = [r for rs in live_run.tries.values() for r in rs]
    assert math.isclose(data["totals"]["emissions_g"], sum(r["emissions_g"] for r in records), rel_tol=1e-9)

    page = ui.server.get(f"/carbon/dags/{LIVE_DAG}/runs/{_q(live_run.run_id)}").text
    shown = _try_rows(page)
    assert set(shown) == set(expected)
    for key, text in expected.items():
        assert f'<div class="method intensity-source">{text}</div>' in shown[key], key
        badge = f'<span class="badge fallback" title="{escape(FALLBACKS[key])}">fallback</span>' if key in FALLBACKS else None
        assert (badge in shown[key]) if badge else ("badge fallback" not in shown[key]), key
    for (task_id, n), reason in FALLBACKS.items():  # and said in words below the chart
        assert f"<li>{task_id} try {n}: {escape(reason)}</li>" in page


def test_the_run_charts_its_grid_intensity_over_time_a_step_per_segment(ui, live_run):
    import re

    data = _run_json(ui, live_run.run_id)
    expected = sorted(
        ({"task_id": task_id, "map_index": -1, "try_number": n, **s}
         for task_id, rs in live_run.tries.items() for n, r in enumerate(rs, start=1) for s in r["intensity"].get("segments") or []),
        key=lambda s: (s["start"], s["task_id"]))
    assert data["intensity_segments"] == expected and len(expected) == 7
    page = ui.server.get(f"/carbon/dags/{LIVE_DAG}/runs/{_q(live_run.run_id)}").text
    assert "Grid intensity over time" in page
    chart = page[page.index('<div id="intensity-chart">'):]
    chart = chart[:chart.index("</svg>")]
    steps = re.findall(r'<line class="step( estimated)?" x1="([0-9.]+)" x2="([0-9.]+)" y1="([0-9.]+)" y2="([0-9.]+)"><title>([^<]*)</title>', chart)
    assert len(steps) == len(expected), "one step per segment"
    assert sum(1 for s in steps if s[0]) == sum(1 for s in expected if s["estimated"]) == 2, "the estimated ones dashed"
    assert "Dashed: estimated" in page and "estimated: a forecast, or the bundled figure" in chart  # caption and legend
    by_tip = {tip: (float(x1), float(x2), float(y1)) for _, x1, x2, y1, _, tip in steps}
    fr_first = next(v for tip, v in by_tip.items() if tip.startswith("train_fr try 1: 10:00:00 to 11:00:00 UTC"))
    wt_first = next(v for tip, v in by_tip.items() if tip.startswith("train_ca try 2: 10:06:00 to 10:10:00 UTC"))
    assert fr_first[1] - fr_first[0] == pytest.approx(15 * (wt_first[1] - wt_first[0]), rel=0.01)  # x: time
    assert wt_first[2] < fr_first[2]  # y: g/kWh, 410 above 52


def test_the_task_page_gives_the_fallback_s_reason_and_the_segments(ui, live_run):
    base = f"/carbon/dags/{LIVE_DAG}/runs/{_q(live_run.run_id)}/tasks"
    gb = ui.server.get(f"{base}/train_gb").text
    assert "live: GB Carbon Intensity (operational)" in gb and "connection <code>uk_carbon_intensity_default</code>" in gb
    assert f'<span class="badge fallback" title="{GB_FAILURE}">fallback</span>' in gb
    assert f'<dd class="warn fallback-reason">{GB_FAILURE} <span class="muted">(the bundled figure stood in for part of this try' in gb
    segments = gb[gb.index('<table class="segments">'):]
    assert segments[:segments.index("</table>")].count("<tr") == 1 + 3  # the header and a row per segment
    assert "2026-12-03 10:30:00" in segments and "[estimated]" in segments
    ca = ui.server.get(f"{base}/train_ca").text
    first, second = ca[ca.index('id="try-1"'):ca.index('id="try-2"')], ca[ca.index('id="try-2"'):]
    assert f"{escape(WT_FAILURE)} <span class=\"muted\">(the bundled figure stood in for all of this try)" in first
    assert "badge fallback" in first and 'table class="segments"' not in first
    assert "live: WattTime, CAISO_NORTH (marginal)" in second and "badge fallback" not in second
    data = ui.server.get(f"/carbon/api/dags/{LIVE_DAG}/runs/{_q(live_run.run_id)}/tasks/train_ca").json()
    assert [(t["intensity_source"].split(":")[0], t["fallback"]) for t in data["tries"]] == [("bundled", WT_FAILURE), ("live", None)]
    assert [r["intensity"] for r in data["records"]] == [r["intensity"] for r in live_run.tries["train_ca"]]


def test_records_without_a_live_source_show_as_before(ui):
    from airflow_carbon.core.intensity import lookup_location

    data = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}").json()
    qc = lookup_location("CA-QC")
    assert {t["intensity_source"] for t in data["tasks"]} == {f"bundled: Quebec, Canada ({qc.source}, {qc.year})"}
    assert all(t["fallback"] is None and t["conn_id"] is None for t in data["tasks"]) and data["intensity_segments"] == []
    page = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}").text
    assert "badge fallback" not in page and "Grid intensity over time" not in page and "chart steps" not in page
    assert 'id="fallbacks"' not in page and "Grid intensity used" in page
    task = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}/tasks/train?map_index=0").text
    assert "bundled: Quebec, Canada" in task and "Fallback" not in task and "segments" not in task and "connection <code>" not in task


def test_no_credential_reaches_a_page_or_the_json_and_text_from_live_sources_stays_text():
    """A record names its live source's Connection by conn_id only; a field named like a credential (a
    writer's mistake) is left out everywhere the UI shows records. A live source's text is escaped."""
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.ui import views
    from airflow_carbon.ui.app import _templates, intensity_chart

    class Links:
        airflow = app = ""
        dag = run = task = page = api = staticmethod(lambda *a, **k: "/x")

    secret = "wt-s3cret-never-shown"
    base = _records_for_template()
    hostile = _live("FR", "electricitymaps", HOSTILE, "average", "lifecycle", HOSTILE,
                    [_segment("10:00", "10:30", 0.01, 50.0, HOSTILE), _segment("10:30", "11:00", 0.01, 60.0, HOSTILE, estimated=True)],
                    fallback=HOSTILE)
    record = {**_measured_at(base, {**hostile, "api_token": secret, "password": secret}), "task": base["task"]}
    shown = views.without_secrets(record)
    assert "api_token" not in shown["intensity"] and "password" not in shown["intensity"] and shown["intensity"]["conn_id"] == "electricitymaps_default"
    assert views.without_secrets(base) is base  # a record without such a field: the record itself
    info = {"run_id": "r", "run_after": None, "logical_date": None, "state": "success", "start_date": None, "end_date": None}
    data = views.run_view("d", info, [shown])
    data.update(task_id="t", map_index=-1, records=[shown], tries=[views.try_row(shown)], summary=task_summary([shown]))
    assert len(data["intensity_segments"]) == 2 and secret not in json.dumps(data)
    chart = intensity_chart(data)
    assert chart.count('<line class="step') == 2 and chart.count('<line class="step estimated"') == 1
    for name in ["run.html", "task.html"]:
        html = _templates().get_template(name).render(links=Links(), data=data, chart="", intensity_chart=chart, json_url="/j",
                                                      csv_url="/c", json_download="/d")
        assert secret not in html and HOSTILE not in html and "&lt;script&gt;" in html, name
        assert "electricitymaps_default" in html or name == "run.html", name



# -- acting on the numbers: carbon-aware starts (the grams they avoided) and budgets --------------------
AWARE_DAG, PUSHED_DAG = "carbon_ui_aware", "carbon_ui_aware_pushed"


def _iso(hms: str) -> str:
    return f"2026-12-03T{hms}.000Z"


def _shift(record: dict, requested: str, started: str, *, deferred: bool, reason: str, now_g: float | None, planned_g: float | None,
           avoided: str) -> dict:
    """A ``shift`` as the Airflow layer writes it (start_planning.started and with_avoided) for ``record``:
    ``avoided`` is "computed" (the record's energy at the forecast of starting when asked, minus its grams),
    "unknown" (None) or "at once" (0)."""
    from airflow_carbon.ui.charts import instant_s

    shift = {"requested_at": _iso(requested), "planned_start": _iso(started), "started_at": _iso(started),
             "waited_s": instant_s(_iso(started)) - instant_s(_iso(requested)), "deferred": deferred,
             "expected_duration_s": 300.0, "expected_duration_from": "expected_duration", "start_within_s": 3600.0, "clipped_to_s": None,
             "forecast_g_per_kwh_now": now_g, "forecast_g_per_kwh_planned": planned_g,
             "forecast_source": "Electricity Maps zone DE (Connection 'electricitymaps_default')", "reason": reason}
    if avoided == "computed":
        shift["avoided_g"] = record["energy_kwh"] * now_g * record["pue"] - record["emissions_g"]
        shift["avoided_basis"] = "the try's energy at the forecast of starting when asked, minus its grams"
    elif avoided == "unknown":
        shift["avoided_g"], shift["avoided_basis"] = None, "its emissions have no live figure to compare with the forecast"
    else:
        shift["avoided_g"], shift["avoided_basis"] = 0.0, "it started at once: nothing was avoided"
    return shift


def _budget(record: dict, *, co2_g: float | None, energy_kwh: float | None, action: str, on_exceeded: str) -> dict:
    spent_g, spent_kwh = record["emissions_g"], record["energy_kwh"]
    exceeded = (co2_g is not None and spent_g > co2_g) or (energy_kwh is not None and spent_kwh > energy_kwh)
    return {"co2_g": co2_g, "energy_kwh": energy_kwh, "spent_g": spent_g, "spent_kwh": spent_kwh, "exceeded": exceeded,
            "action": action if exceeded else "none", "on_exceeded": on_exceeded}


HOSTILE_REASON = f"waited 30 s {HOSTILE}"


def _aware_tries(base: dict) -> dict[str, list[dict]]:
    """Per task of carbon_ui_aware_pushed, its tries' records: ``train_late`` waited and the grid got dirtier (a
    negative avoided figure), then its budget stopped it; ``train_unknown`` waited but its grams avoided are unknown
    (no live figure; its reason text is hostile markup), within its budget; ``train_retried`` waited (unknown) on
    try 1, started at once on try 2 (0 avoided), and has no budget."""
    dirtier = _live("DE", "electricitymaps", "DE", "average", "lifecycle", "Electricity Maps, zone DE",
                    [_segment("10:00", "10:05", 0.0075, 420.0, "electricitymaps:DE")])
    late = _measured_at(base, dirtier, status="failed")
    late["shift"] = _shift(late, "09:59:18", "10:00:00", deferred=True, now_g=380.0, planned_g=350.0, avoided="computed",
                           reason="waited 42 s for a forecast 350 gCO2e/kWh instead of 380 (7.9 % less)")
    late["budget"] = _budget(late, co2_g=1.0, energy_kwh=None, action="stop", on_exceeded="stop")
    unknown = _measured_at(base, _bundled("DE"), start="11:00", end="11:02", kwh=0.002)
    unknown["shift"] = _shift(unknown, "10:59:30", "11:00:00", deferred=True, now_g=400.0, planned_g=300.0, avoided="unknown",
                              reason=HOSTILE_REASON)
    unknown["budget"] = _budget(unknown, co2_g=None, energy_kwh=1.0, action="warn", on_exceeded="warn")
    first = _measured_at(base, _bundled("DE"), status="failed", start="12:00", end="12:01", kwh=0.001)
    first["shift"] = _shift(first, "11:59:30", "12:00:00", deferred=True, now_g=400.0, planned_g=300.0, avoided="unknown",
                            reason="waited 30 s for a forecast 300 gCO2e/kWh instead of 400 (25.0 % less)")
    second = _measured_at(base, _bundled("DE"), start="12:02", end="12:03", kwh=0.001)
    second["shift"] = _shift(second, "12:02:00", "12:02:00", deferred=False, now_g=300.0, planned_g=300.0, avoided="at once",
                             reason="started at once: no later start in the window is greener")
    return {"train_late": [late], "train_unknown": [unknown], "train_retried": [first, second]}


def run_aware_pushed_dag(airflow_dags) -> SimpleNamespace:
    """A run of carbon_ui_aware_pushed (tests/dags/carbon_ui_aware_dags.py) over :func:`_aware_tries`' records: its
    ``run_id`` and ``tries`` (task id -> its tries' records, without the task identity)."""
    from airflow_carbon.core.record import validate_record

    tries = _aware_tries(_records_for_template())
    for records in tries.values():
        for r in records:
            validate_record({**r, "task": {"dag_id": PUSHED_DAG, "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}})
    run = airflow_dags.get_dag(PUSHED_DAG).test(run_conf={"records": tries})
    return SimpleNamespace(run_id=run.run_id, tries=tries)


@pytest.fixture(scope="module")
def aware_pushed(ui, airflow_dags):
    return run_aware_pushed_dag(airflow_dags)


def acting_expected(records: list[dict]) -> dict:
    """What the overview and DAG pages must say of ``records``' carbon-aware starts, by task instance as the
    summaries count them: the sum of the known avoided grams (None where none is known), the task instances with a
    carbon-aware start and, of those, the ones with a known figure; and the task instances over budget (last try)."""
    by_ti: dict[tuple, list[dict]] = {}
    for r in records:
        t = r["task"]
        by_ti.setdefault((t["dag_id"], t["run_id"], t["task_id"], t["map_index"]), []).append(r)
    known = [r["shift"]["avoided_g"] for r in records if "shift" in r and r["shift"].get("avoided_g") is not None]
    aware = [rs for rs in by_ti.values() if any("shift" in r for r in rs)]
    lasts = [max(rs, key=lambda r: r["task"]["try_number"]) for rs in by_ti.values()]
    return {"avoided_g": sum(known) if known else None, "carbon_aware_task_instances": len(aware),
            "avoided_known_task_instances": sum(1 for rs in aware if any(r.get("shift", {}).get("avoided_g") is not None for r in rs)),
            "budgets_exceeded": sum(1 for r in lasts if r.get("budget", {}).get("exceeded"))}


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15))


def _avoided_shown(html: str, element_id: str) -> float | None:
    """The exact avoided grams a page shows in the element ``element_id`` (data-avoided-g), None where it says unknown."""
    import re

    match = re.search(rf'<div class="avoided v[^"]*" id="{element_id}"(?: data-avoided-g="([^"]+)")?>([^<]*)</div>', html)
    assert match, f"no {element_id} on the page"
    return None if match[1] is None else float(match[1])


def test_a_carbon_aware_try_shows_its_wait_the_reason_and_its_budget(ui):
    from airflow_carbon.ui import format as fmt

    (record,) = _records(AWARE_DAG, ui.aware_run)
    shift, budget = record["shift"], record["budget"]
    # the fixture's run: it waited a few seconds for the greener forecast and went over its tiny CO2 budget
    assert shift["deferred"] is True and 0 < shift["waited_s"] < 15 and shift["reason"].startswith("waited ")
    assert shift["avoided_g"] > 0 and budget["exceeded"] is True and budget["action"] == "warn"

    data = ui.server.get(f"/carbon/api/dags/{AWARE_DAG}/runs/{_q(ui.aware_run)}").json()
    (row,) = data["tasks"]
    assert row["shift"] == shift and row["budget"] == budget
    totals = data["totals"]
    assert totals["avoided_g"] == pytest.approx(shift["avoided_g"], rel=1e-12) and totals["waited_s"] == pytest.approx(shift["waited_s"])
    assert (totals["carbon_aware_tries"], totals["avoided_known_tries"], totals["budgets_exceeded"]) == (1, 1, 1)
    (ti,) = data["task_instances"]  # the summary the overview and DAG pages sum
    assert ti["budget_exceeded"] is True and ti["budget_action"] == "warn" and ti["avoided_g"] == pytest.approx(shift["avoided_g"])

    page = ui.server.get(f"/carbon/dags/{AWARE_DAG}/runs/{_q(ui.aware_run)}").text
    assert _avoided_shown(page, "total-avoided") == pytest.approx(shift["avoided_g"], rel=1e-12)
    assert "1 of 1 try with a known figure" in page and f"waited {fmt.duration(shift['waited_s'])} in all" in page
    shown = _try_rows(page)[("train", 1)]
    assert f'<span class="waited">waited {fmt.duration(shift["waited_s"])}</span>' in shown
    assert f'<div class="method shift-reason">{escape(shift["reason"])}</div>' in shown
    assert ">budget exceeded: warned</span>" in shown and 'class="badge budget budget-warn"' in shown

    task = ui.server.get(f"/carbon/dags/{AWARE_DAG}/runs/{_q(ui.aware_run)}/tasks/train").text
    assert f'<dd class="shift-reason">{escape(shift["reason"])}</dd>' in task
    assert (f"planned {shift['planned_start'][:19].replace('T', ' ')} · started {shift['started_at'][:19].replace('T', ' ')}"
            in task)
    assert (f"{fmt.intensity(shift['forecast_g_per_kwh_now'])} starting when asked · "
            f"{fmt.intensity(shift['forecast_g_per_kwh_planned'])} at the planned start") in task
    assert f'data-avoided-g="{shift["avoided_g"]}">{fmt.avoided(shift["avoided_g"])}</span>' in task
    assert '<div class="v warn" id="budget-status">exceeded: warned</div>' in task and "budget 0.001 mg CO2e, over all tries" in task
    api = ui.server.get(f"/carbon/api/dags/{AWARE_DAG}/runs/{_q(ui.aware_run)}/tasks/train").text
    from conftest import UI_EM_TOKEN

    assert UI_EM_TOKEN not in page + task + api


def test_the_overview_and_dag_pages_sum_the_avoided_grams_from_the_summaries(ui, aware_pushed):
    data = ui.server.get("/carbon/api/overview?period=all").json()
    page = ui.server.get("/carbon/?period=all").text
    dags = {d["dag_id"]: d for d in data["dags"]}
    assert {AWARE_DAG, PUSHED_DAG} <= set(dags)
    keys = ("avoided_g", "carbon_aware_task_instances", "avoided_known_task_instances")
    everything = []
    for dag_id, shown in dags.items():
        records = _dag_records(dag_id) if dag_id != "carbon_card_bad_record" else []  # its record is forged: no summary
        everything += records
        expected = acting_expected(records)
        assert all(_close(shown[k], expected[k]) if k == "avoided_g" else shown[k] == expected[k] for k in keys), (dag_id, shown, expected)
    expected = acting_expected(everything)
    assert _close(data["totals"]["avoided_g"], expected["avoided_g"]), (data["totals"], expected)
    assert [data["totals"][k] for k in keys[1:]] == [expected[k] for k in keys[1:]]
    # the pushed run: a negative figure and two unknown tries; train_retried counts as known (its try 2's 0 g)
    pushed = acting_expected(_records(PUSHED_DAG, aware_pushed.run_id))
    assert (pushed["carbon_aware_task_instances"], pushed["avoided_known_task_instances"], pushed["budgets_exceeded"]) == (3, 2, 1)
    assert pushed["avoided_g"] < 0
    # the page shows what the JSON says
    assert _close(_avoided_shown(page, "total-avoided"), data["totals"]["avoided_g"])
    from airflow_carbon.ui.format import known_of

    t = data["totals"]
    assert f'<span class="avoided-known">{known_of(t["avoided_known_task_instances"], t["carbon_aware_task_instances"], "task instance")}' in page

    dag = ui.server.get(f"/carbon/api/dags/{PUSHED_DAG}?period=all").json()
    run = next(r for r in dag["runs"] if r["run_id"] == aware_pushed.run_id)
    for k, v in pushed.items():
        assert _close(run[k], v) if k == "avoided_g" else run[k] == v, (k, run[k], v)
    every = acting_expected(_dag_records(PUSHED_DAG))
    assert _close(dag["totals"]["avoided_g"], every["avoided_g"]) and dag["totals"]["budgets_exceeded"] == every["budgets_exceeded"]
    dag_page = ui.server.get(f"/carbon/dags/{PUSHED_DAG}?period=all").text
    assert _close(_avoided_shown(dag_page, "total-avoided"), dag["totals"]["avoided_g"])
    assert "task instances with a known figure; unknown ones are not counted as 0" in dag_page
    assert "(the wait cost more)" in dag_page and 'class="avoided neg"' in dag_page
    row = dag_page[dag_page.index(f'<tr data-run-id="{aware_pushed.run_id}">'):]
    row = row[:row.index("</tr>")]
    assert ">budget exceeded</span>" in row and "2 of 3 known" in row


def test_the_run_page_counts_the_tries_with_a_known_figure_and_shows_negative_ones_as_such(ui, aware_pushed):
    from airflow_carbon.ui import format as fmt

    records = [r for rs in aware_pushed.tries.values() for r in rs]
    known = [r["shift"]["avoided_g"] for r in records if r["shift"]["avoided_g"] is not None]
    data = ui.server.get(f"/carbon/api/dags/{PUSHED_DAG}/runs/{_q(aware_pushed.run_id)}").json()
    t = data["totals"]
    assert _close(t["avoided_g"], sum(known)) and (t["carbon_aware_tries"], t["avoided_known_tries"], t["budgets_exceeded"]) == (4, 2, 1)
    assert t["waited_s"] == pytest.approx(sum(r["shift"]["waited_s"] for r in records))
    page = ui.server.get(f"/carbon/dags/{PUSHED_DAG}/runs/{_q(aware_pushed.run_id)}").text
    assert _close(_avoided_shown(page, "total-avoided"), sum(known))
    assert "2 of 4 tries with a known figure; unknown ones are not counted as 0" in page
    rows = _try_rows(page)
    late = aware_pushed.tries["train_late"][0]["shift"]
    assert late["avoided_g"] < 0
    assert f'data-avoided-g="{late["avoided_g"]}">{fmt.emissions(late["avoided_g"])} (the wait cost more)</span>' in rows[("train_late", 1)]
    assert 'class="badge budget budget-stop"' in rows[("train_late", 1)] and ">budget exceeded: stopped</span>" in rows[("train_late", 1)]
    assert '<span class="avoided">unknown</span>' in rows[("train_unknown", 1)] and "badge budget" not in rows[("train_unknown", 1)]
    assert '<span class="waited">waited 30 s</span>' in rows[("train_retried", 1)]
    assert '<span class="waited">started at once</span>' in rows[("train_retried", 2)] and 'data-avoided-g="0.0">0 g CO2e</span>' in rows[("train_retried", 2)]
    assert HOSTILE not in page and escape(HOSTILE_REASON) in rows[("train_unknown", 1)]


def test_the_task_page_gives_each_try_s_start_and_budget_in_words(ui, aware_pushed):
    base = f"/carbon/dags/{PUSHED_DAG}/runs/{_q(aware_pushed.run_id)}/tasks"
    late = ui.server.get(f"{base}/train_late").text
    assert "(the wait cost more)" in late and "planned 2026-12-03 10:00:00 · started 2026-12-03 10:00:00" in late
    assert "asked to start 2026-12-03 09:59:18" in late and "380 g CO2e/kWh starting when asked · 350 g CO2e/kWh at the planned start" in late
    assert '<div class="v warn" id="budget-status">exceeded: stopped</div>' in late and ">budget exceeded: stopped</span>" in late
    unknown = ui.server.get(f"{base}/train_unknown").text
    assert HOSTILE not in unknown and f'<dd class="shift-reason">{escape(HOSTILE_REASON)}</dd>' in unknown
    assert '<span class="avoided">unknown</span> <span class="muted">(its emissions have no live figure' in unknown
    assert "0 of 1 try with a known figure; unknown ones are not counted as 0" in unknown
    assert '<div class="v" id="budget-status">within budget</div>' in unknown and "badge budget" not in unknown
    retried = ui.server.get(f"{base}/train_retried").text
    first, second = retried[retried.index('id="try-1"'):retried.index('id="try-2"')], retried[retried.index('id="try-2"'):]
    assert '<span class="waited">waited 30 s</span>' in first and '<span class="waited">started at once</span>' in second
    assert "1 of 2 tries with a known figure" in retried and 'id="budget-card"' not in retried and "<dt>Budget</dt>" not in retried
    data = ui.server.get(f"/carbon/api/dags/{PUSHED_DAG}/runs/{_q(aware_pushed.run_id)}/tasks/train_retried").json()
    assert data["acting"] == {"avoided_g": 0.0, "carbon_aware_tries": 2, "avoided_known_tries": 1, "waited_s": 30.0, "budgets_exceeded": 0}
    assert [t["shift"]["deferred"] for t in data["tries"]] == [True, False] and data["summary"]["avoided_g"] == 0.0


def test_pages_without_carbon_aware_starts_say_nothing_of_them(ui):
    data = ui.server.get("/carbon/api/overview?period=all", user="alice").json()
    assert data["totals"]["avoided_g"] is None and data["totals"]["carbon_aware_task_instances"] == 0
    assert 'id="total-avoided"' not in ui.server.get("/carbon/?period=all", user="alice").text
    dag = ui.server.get("/carbon/api/dags/carbon_mapped?period=all").json()
    assert dag["totals"]["avoided_g"] is None and dag["totals"]["carbon_aware_task_instances"] == 0 and dag["totals"]["budgets_exceeded"] == 0
    assert all(r["avoided_g"] is None and r["carbon_aware_task_instances"] == 0 for r in dag["runs"])
    page = ui.server.get("/carbon/dags/carbon_mapped?period=all").text
    assert 'id="total-avoided"' not in page and ">Avoided</th>" not in page and "badge budget" not in page
    run = ui.server.get(f"/carbon/api/dags/carbon_card_local/runs/{_q(ui.card_run)}").json()
    assert run["totals"]["carbon_aware_tries"] == 0 and run["totals"]["avoided_g"] is None
    assert all(t["shift"] is None and t["budget"] is None for t in run["tasks"])
    run_page = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}").text
    assert "Carbon-aware start" not in run_page and 'id="total-avoided"' not in run_page and "badge budget" not in run_page
    task = ui.server.get(f"/carbon/dags/carbon_card_local/runs/{_q(ui.card_run)}/tasks/train?map_index=0").text
    assert "Carbon-aware start" not in task and 'id="budget-card"' not in task
