"""Shared fixtures. `fake_gpu(config)` activates the simulated GPU (tests/fake_nvml) for one test;
`airflow_dags` is a real Airflow (SQLite metadata DB in a temporary AIRFLOW_HOME) with tests/dags parsed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import fake_nvml

ROOT = Path(__file__).resolve().parents[1]

# Before anything imports Airflow: a private AIRFLOW_HOME, never the user's.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-carbon-tests-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "tests" / "dags")
for _name in [k for k in os.environ if k.startswith("AIRFLOW__CARBON__")]:
    del os.environ[_name]


def pytest_sessionfinish(session, exitstatus):
    """The private AIRFLOW_HOME (metadata DB, logs) goes with the session."""
    import shutil

    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_dags():
    """The DagBag of tests/dags, after migrating a fresh metadata DB (paid once per session)."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def fake_gpu():
    """Call with a FAKE_NVML_CONFIG text; returns a fake_nvml.FakeGPU (ground truth: true_energy_j)."""
    active: list[fake_nvml.FakeGPU] = []

    def configure(config: str) -> fake_nvml.FakeGPU:
        gpu = fake_nvml.activate(config)
        active.append(gpu)
        return gpu

    yield configure
    for gpu in reversed(active):
        gpu.deactivate()


HOSTILE = "<script>alert('carbon')</script>"
"""Text that must render as text: it reaches the UI as the simulated GPU's name (a driver string)."""


@pytest.fixture(scope="session")
def ui(airflow_dags, tmp_path_factory):
    """A real ``airflow api-server`` (tests/ui_server.py) over records of real dag.test() runs:
    carbon_card_local (mapped training, a failed try, a published model card), carbon_mapped, and
    carbon_card_bad_record (a task that pushes a forged record), on a simulated GPU whose name is hostile
    markup. ``alice`` may read carbon_mapped only."""
    from types import SimpleNamespace

    from ui_server import ApiServer

    gpu = fake_nvml.activate(f"count=1; power=const:150; name=NVIDIA {HOSTILE}")
    try:
        card = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path_factory.mktemp("card"))})
        mapped = airflow_dags.get_dag("carbon_mapped").test()
        forged = airflow_dags.get_dag("carbon_card_bad_record").test(run_conf={"dir": str(tmp_path_factory.mktemp("forged"))})
    finally:
        gpu.deactivate()
    server = ApiServer(tmp_path_factory.mktemp("api-server"), scope={"alice": ["carbon_mapped"]}).start()
    yield SimpleNamespace(server=server, card_run=card.run_id, mapped_run=mapped.run_id, forged_run=forged.run_id)
    server.stop()
