"""The measuring core runs without Airflow: importing it loads no Airflow, Hub client, pandas or NVML."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

CORE = ["airflow_carbon", "airflow_carbon.core.meter", "airflow_carbon.cli", "airflow_carbon.core.record", "airflow_carbon.core.intensity",
        "airflow_carbon.core.aggregate", "airflow_carbon.core.export", "airflow_carbon.ui.charts", "airflow_carbon.ui.format"]
FORBIDDEN = ("airflow", "huggingface_hub", "pandas", "pynvml", "fastapi", "numpy")


@pytest.mark.parametrize("module", CORE)
def test_importing_the_core_is_cheap(module):
    code = f"import sys, json, {module}; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert not loaded & set(FORBIDDEN), f"{module} imports {sorted(loaded & set(FORBIDDEN))}"


def test_a_window_measures_without_airflow_imported():
    code = (
        "import sys, json\n"
        "from airflow_carbon import EnergyMeter\n"
        "with EnergyMeter(location='FR') as m: pass\n"
        "print(json.dumps([m.record['emissions_g'] >= 0, 'airflow' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [True, False]
