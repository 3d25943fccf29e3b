"""Shared fixtures. `fake_gpu(config)` activates the simulated GPU (carbon_testing.fake_nvml) for one test;
`airflow_dags` is a real Airflow (SQLite metadata DB in a temporary AIRFLOW_HOME) with tests/dags parsed.

Tiers: every test carries exactly one of the markers unit, airflow and system (pyproject.toml), as a
module's ``pytestmark`` or on the test itself; collection fails otherwise. A unit-only session
(``make test-fast``: ``pytest -m unit``) also fails the first test after which Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from carbon_testing import fake_nvml

ROOT = Path(__file__).resolve().parents[1]

# Before anything imports Airflow: a private AIRFLOW_HOME, never the user's.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-carbon-tests-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "tests" / "dags")
for _name in [k for k in os.environ if k.startswith("AIRFLOW__CARBON__")]:
    del os.environ[_name]


TIERS = ("unit", "airflow", "system")
_UNIT_ONLY = pytest.StashKey[bool]()
_AIRFLOW_SEEN = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a test without a tier fails every run, test-fast too
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {' and '.join(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(
            "every test needs exactly one tier marker, pytest.mark.unit, airflow or system (pyproject.toml's markers):\n  "
            + "\n  ".join(wrong)
        )


def pytest_collection_finish(session):
    items = session.items
    session.config.stash[_UNIT_ONLY] = bool(items) and all(item.get_closest_marker("unit") for item in items)
    session.config.stash[_AIRFLOW_SEEN] = "airflow" in sys.modules
    if session.config.stash[_UNIT_ONLY] and "airflow" in sys.modules:
        warnings.warn(pytest.PytestWarning("Airflow was imported while collecting (a test module imports it at the top): "
                                           "the unit tier's check that no test imports Airflow is off"), stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """In a unit-only session, Airflow imported into the test process fails the test that imported it."""
    yield  # the test's own teardown first
    config = item.config
    if config.stash.get(_UNIT_ONLY, False) and not config.stash.get(_AIRFLOW_SEEN, False) and "airflow" in sys.modules:
        config.stash[_AIRFLOW_SEEN] = True
        raise AssertionError(f"{item.nodeid} imported Airflow into the test process: it belongs to the airflow tier, not unit")


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
    """A real ``airflow api-server`` (carbon_testing.ui_server) over records of real dag.test() runs:
    carbon_card_local (mapped training, a failed try, a published model card), carbon_mapped, and
    carbon_card_bad_record (a task that pushes a forged record), on a simulated GPU whose name is hostile
    markup. ``alice`` may read carbon_mapped only."""
    from types import SimpleNamespace

    from carbon_testing.ui_server import ApiServer

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
