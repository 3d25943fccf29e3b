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
from urllib.parse import quote

import pytest

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

    from airflow_carbon.xcom import XCOM_KEY

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.key == XCOM_KEY))
        return [r for x in xcoms for r in XComModel.deserialize_value(x)]


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
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.ui.views import try_row

    data = {"dag_id": HOSTILE, "run_id": HOSTILE, "task_id": HOSTILE, "map_index": -1, "state": "success", "run_after": None,
            "totals": {"emissions_g": 1.0, "energy_kwh": 1.0, "energy_kwh_by_component": {"gpu": 0, "cpu": 1, "ram": 0}, "tries": 1, "failed_tries": 0},
            "task_instances": [], "tasks": [try_row(record)], "intensity": [], "model_cards": [{"task_id": HOSTILE, "location": HOSTILE, "changed": True, "co2_eq_emissions": {"source": HOSTILE}}],
            "records": [record], "summary": task_summary([record]), "runs": [], "period": "all", "total_runs": 0}
    for name in ["run.html", "task.html", "dag.html", "error.html"]:
        html = _templates().get_template(name).render(links=Links(), data=data, chart="", periods=[], json_url="/j", csv_url="/c",
                                                      json_download="/d", status=404, detail=HOSTILE, login=None)
        assert HOSTILE not in html and "&lt;script&gt;" in html, name


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
