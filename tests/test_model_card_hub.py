"""PublishModelCardOperator against a local server that speaks the Hub's API (carbon_testing.hubsim), through
the real huggingface_hub client over real HTTP, in real DAG runs (dag.test())."""

from __future__ import annotations

import json

import pytest

from airflow_carbon.card.text import existing_co2
from airflow_helpers import xcom_value

pytestmark = pytest.mark.airflow

TOKEN = "hf_test_write_token_5f3a9c"
CARD = "---\nlicense: apache-2.0\ntags:\n- llm\n---\n\n# org/model\n\nTrained by a pipeline.\n"


@pytest.fixture
def hub(monkeypatch):
    from carbon_testing.hubsim import FakeHub

    with FakeHub() as server:
        url = server.url
        server.add_token(TOKEN, write=True)
        server.add_token("hf_read_only", write=False)
        monkeypatch.setenv("AIRFLOW_CONN_HF_TEST", json.dumps({"conn_type": "generic", "host": url, "password": TOKEN}))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield server


def _run(airflow_dags, dag_id, repo):
    return airflow_dags.get_dag(dag_id).test(run_conf={"repo": repo})


def test_publishes_to_the_hub_keeping_the_rest_of_the_card(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1; power=const:300")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    before = hub.head("org/model")
    run = _run(airflow_dags, "carbon_card_hub", "org/model")
    assert run.state == "success"
    card = hub.file("org/model", "README.md").decode()
    assert card.startswith("---\nlicense: apache-2.0\ntags:\n- llm\nco2_eq_emissions:\n")
    assert card.endswith("---\n\n# org/model\n\nTrained by a pipeline.\n")
    co2 = existing_co2(card)
    assert co2["training_type"] == "pre-training" and co2["hardware_used"].startswith("1 x NVIDIA H200")
    (commit,) = [c for c in hub.commits("org/model") if c["parent"] == before]
    assert commit["sha"] == hub.head("org/model")


def _publish_result(run):
    return xcom_value(run.run_id, "publish")


def test_its_own_earlier_entry_is_recomputed_not_added_to(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1; power=const:300")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    _run(airflow_dags, "carbon_card_hub", "org/model")
    second = _run(airflow_dags, "carbon_card_hub", "org/model")  # on_existing="fail", yet its own entry is replaced
    assert second.state == "success"
    co2 = existing_co2(hub.file("org/model", "README.md").decode())
    assert co2["emissions"] == pytest.approx(_publish_result(second)["totals"]["emissions_g"], rel=1e-5)


def test_create_pr_leaves_main_untouched(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    run = _run(airflow_dags, "carbon_card_hub_pr", "org/model")
    assert run.state == "success"
    assert hub.file("org/model", "README.md").decode() == CARD
    (pr,) = hub.pull_requests("org/model")
    assert existing_co2(hub.file("org/model", "README.md", revision=pr["ref"]).decode()) is not None


def test_a_repo_without_readme_gets_a_minimal_card(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1")
    hub.create_repo("org/empty", {"config.json": b"{}"})
    assert _run(airflow_dags, "carbon_card_hub", "org/empty").state == "success"
    assert existing_co2(hub.file("org/empty", "README.md").decode()) is not None


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "GET", "path_regex": r"/api/models/org/model", "status": 503, "message": "Hub is overloaded"},
        {"method": "POST", "path_regex": r"/commit/", "status": 500, "message": "internal error"},
        {"method": "GET", "path_regex": r"/resolve/", "status": 502, "message": "upstream storage unavailable"},
    ],
)
def test_hub_errors_fail_the_task_and_leave_the_card(airflow_dags, fake_gpu, hub, fault, capfd):
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    hub.fail_next(fault["method"], fault["path_regex"], fault["status"], fault["message"], count=10)
    assert _run(airflow_dags, "carbon_card_hub", "org/model").state == "failed"
    assert hub.file("org/model", "README.md").decode() == CARD
    out, err = capfd.readouterr()
    assert fault["message"] in out + err, [line for line in (out + err).splitlines() if "rror" in line][-12:]


def test_a_hub_timeout_fails_the_task_and_leaves_the_card(airflow_dags, fake_gpu, hub, capfd):
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    hub.fail_next("GET", r"/api/models/org/model", 200, "slow", count=1, delay_s=3)
    assert _run(airflow_dags, "carbon_card_hub_timeout", "org/model").state == "failed"
    assert hub.file("org/model", "README.md").decode() == CARD
    out, err = capfd.readouterr()
    assert "Timeout" in out + err or "timed out" in out + err


def test_missing_repo_commit_header_is_not_taken_for_a_missing_card(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    hub.omit_repo_commit_header = True
    assert _run(airflow_dags, "carbon_card_hub", "org/model").state == "failed"
    assert hub.file("org/model", "README.md").decode() == CARD


@pytest.mark.parametrize("token, status", [("hf_wrong", 401), ("hf_read_only", 403)])
def test_bad_tokens_fail_with_the_hubs_status(airflow_dags, fake_gpu, hub, monkeypatch, token, status):
    monkeypatch.setenv("AIRFLOW_CONN_HF_TEST", json.dumps({"conn_type": "generic", "host": hub.url, "password": token}))
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    assert _run(airflow_dags, "carbon_card_hub", "org/model").state == "failed"
    assert hub.file("org/model", "README.md").decode() == CARD


def test_unknown_repo_fails(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1")
    assert _run(airflow_dags, "carbon_card_hub", "org/nope").state == "failed"


def test_a_concurrent_edit_is_not_overwritten(airflow_dags, fake_gpu, hub):
    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    edited = CARD.replace("Trained by a pipeline.", "Edited by a person meanwhile.")
    # Someone commits between our read (the README download) and our commit.
    hub.on_request("GET", r"/resolve/", lambda: hub.commit_externally("org/model", {"README.md": edited.encode()}), once=True)
    assert _run(airflow_dags, "carbon_card_hub", "org/model").state == "failed"
    assert hub.file("org/model", "README.md").decode() == edited


def test_the_token_never_reaches_logs_xcom_or_rendered_fields(airflow_dags, fake_gpu, hub, capfd):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    fake_gpu("count=1")
    hub.create_repo("org/model", {"README.md": CARD.encode()})
    run = _run(airflow_dags, "carbon_card_hub", "org/model")
    assert run.state == "success"
    assert any(TOKEN in str(r["headers"]) for r in hub.requests)  # it was used...
    out, err = capfd.readouterr()
    assert TOKEN not in out + err  # ...but never logged
    with create_session() as session:
        xcoms = [XComModel.deserialize_value(x) for x in session.scalars(select(XComModel).where(XComModel.run_id == run.run_id))]
        rendered = [r.rendered_fields for r in session.scalars(select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == run.run_id))]
    assert TOKEN not in json.dumps(xcoms, default=str) and TOKEN not in json.dumps(rendered, default=str)
