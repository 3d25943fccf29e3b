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
# The windows this session opens register in a folder of its own (core/sharing.py's default is under
# XDG_RUNTIME_DIR): another test session on this host, or a cluster's workers, share no GPU with them.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="airflow-carbon-tests-run-")


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
def cache_dir(tmp_path, monkeypatch):
    """A live-intensity cache of the test's own (``[carbon] intensity_cache_dir``): no figure from another test."""
    monkeypatch.setenv("AIRFLOW__CARBON__INTENSITY_CACHE_DIR", str(tmp_path / "intensity-cache"))
    return tmp_path / "intensity-cache"


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


UI_EM_TOKEN = "em-secret-token-ui-aware-7c1f"
"""The simulated Electricity Maps token of the ``ui`` fixture's carbon-aware run: no page or JSON may show it."""


class _DirtyNowCleanSoon(dict):
    """A forecast ({point start s: g}, each point lasting until the next) whose points follow the clock when the
    simulator serves it: 400 gCO2e/kWh now, 100 from 5 s on for a minute, then 400 for 10 min. So the task
    waits about 5 s, however long dag.test() took to start it."""

    def items(self):
        import time

        now = int(time.time())
        return {now - 1: 400.0, now + 5: 100.0, now + 65: 400.0, now + 665: 400.0}.items()  # the last lasts 10 min too


def _carbon_aware_run(airflow_dags, cache_dir: Path):
    """A dag.test() run of carbon_ui_aware (tests/dags/carbon_ui_aware_dags.py) against a simulated Electricity
    Maps whose forecast is dirty now and clean ~5 s later: the task waits those seconds (its record's
    ``shift``), then exceeds its CO2 budget and warns (``budget``)."""
    import json
    import time

    from carbon_testing.gridsim import ElectricityMapsSim

    now = time.time()
    hour = now - now % 3600
    sim = ElectricityMapsSim({"DE": {hour - 3600: 100.0, hour: 100.0, hour + 3600: 100.0}}, token=UI_EM_TOKEN, now_s=None,
                             forecasts={"DE": _DirtyNowCleanSoon()})
    with sim, pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_ELECTRICITYMAPS_DEFAULT",
                   json.dumps({"conn_type": "electricitymaps", "host": sim.url, "password": UI_EM_TOKEN}))
        env.setenv("AIRFLOW__CARBON__INTENSITY_CACHE_DIR", str(cache_dir))
        return airflow_dags.get_dag("carbon_ui_aware").test()


@pytest.fixture(scope="session")
def ui(airflow_dags, tmp_path_factory):
    """A real ``airflow api-server`` (carbon_testing.ui_server) over records of real dag.test() runs:
    carbon_card_local (mapped training, a failed try, a published model card), carbon_mapped,
    carbon_card_bad_record (a task that pushes a forged record) and carbon_ui_aware (a carbon-aware start that
    waits a few seconds, and a CO2 budget exceeded with a warning), on a simulated GPU whose name is hostile
    markup. ``alice`` may read carbon_mapped only."""
    from types import SimpleNamespace

    from carbon_testing.ui_server import ApiServer

    gpu = fake_nvml.activate(f"count=1; power=const:150; name=NVIDIA {HOSTILE}")
    try:
        card = airflow_dags.get_dag("carbon_card_local").test(run_conf={"dir": str(tmp_path_factory.mktemp("card"))})
        mapped = airflow_dags.get_dag("carbon_mapped").test()
        forged = airflow_dags.get_dag("carbon_card_bad_record").test(run_conf={"dir": str(tmp_path_factory.mktemp("forged"))})
        aware = _carbon_aware_run(airflow_dags, tmp_path_factory.mktemp("intensity-cache"))
    finally:
        gpu.deactivate()
    server = ApiServer(tmp_path_factory.mktemp("api-server"), scope={"alice": ["carbon_mapped"]}).start()
    yield SimpleNamespace(server=server, card_run=card.run_id, mapped_run=mapped.run_id, forged_run=forged.run_id,
                          aware_run=aware.run_id)
    server.stop()
