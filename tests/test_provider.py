"""Provider and plugin registration as Airflow sees them, and the [carbon] configuration section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_provider_is_registered_under_the_distribution_name():
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert "airflow-carbon" in providers
    info = providers["airflow-carbon"].data
    assert info["package-name"] == "airflow-carbon"
    assert set(info["config"]["carbon"]["options"]) >= {"location", "pue", "g_per_kwh", "sampling_interval_s", "gpu_queue", "auto_track"}


def test_task_carbon_is_available_from_the_sdk():
    from airflow.sdk import task

    from airflow_carbon.decorators.carbon import carbon_task

    assert task.carbon is carbon_task


def test_config_comes_from_the_section_and_the_environment(monkeypatch):
    from airflow_carbon.settings import CarbonSettings

    assert CarbonSettings.from_config().pue == 1.0
    monkeypatch.setenv("AIRFLOW__CARBON__PUE", "1.3")
    monkeypatch.setenv("AIRFLOW__CARBON__LOCATION", "gcp:europe-west1")
    monkeypatch.setenv("AIRFLOW__CARBON__GPU_QUEUE", "gpu")
    settings = CarbonSettings.from_config()
    assert (settings.pue, settings.location, settings.gpu_queue) == (1.3, "gcp:europe-west1", "gpu")


def test_gpu_queue_is_given_to_tracked_tasks_without_a_queue(monkeypatch):
    from airflow.sdk import DAG

    from airflow_carbon import CarbonOperator

    monkeypatch.setenv("AIRFLOW__CARBON__GPU_QUEUE", "gpu")
    with DAG("queues", schedule=None):
        default = CarbonOperator(task_id="default", python_callable=print, location="FR")
        explicit = CarbonOperator(task_id="explicit", python_callable=print, location="FR", queue="a100")
    assert (default.queue, explicit.queue) == ("gpu", "a100")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"location": "Germny"}, "Germany (DE)"),
        ({"pue": -1}, "pue=-1"),
        ({"g_per_kwh": "lots"}, "'lots'"),
        ({"sampling_interval_s": 0}, "sampling_interval_s=0"),
    ],
)
def test_bad_operator_arguments_name_the_value(kwargs, message):
    from airflow_carbon import CarbonOperator

    with pytest.raises(ValueError) as err:
        CarbonOperator(task_id="t", python_callable=print, **{"location": "FR", **kwargs})
    assert message in str(err.value)


def test_plugin_is_listed_once_with_its_listener():
    out = subprocess.run([AIRFLOW, "plugins", "--output", "json"], capture_output=True, text=True, check=True).stdout
    plugins = [p for p in json.loads(out[out.index("[") :]) if p["name"] == "carbon"]
    assert len(plugins) == 1
    assert "airflow_carbon.listeners.carbon" in str(plugins[0]["listeners"])


def test_importing_the_plugin_loads_no_ui_hub_or_nvml():
    code = (
        "import sys, json, airflow.plugins_manager\n"
        "before = set(sys.modules)\n"
        "import airflow_carbon.plugins.carbon\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    added = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert not added & {"fastapi", "huggingface_hub", "pynvml", "pandas", "numpy"}, added


def test_the_supported_airflow_versions_are_stated_once_and_honestly():
    from pathlib import Path

    import tomllib

    from airflow_carbon.version_compat import AIRFLOW_VERSION, MIN_AIRFLOW_VERSION

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    airflow = next(d for d in pyproject["project"]["dependencies"] if d.startswith("apache-airflow"))
    assert f">={MIN_AIRFLOW_VERSION[0]}.{MIN_AIRFLOW_VERSION[1]}" in airflow
    assert AIRFLOW_VERSION >= MIN_AIRFLOW_VERSION
