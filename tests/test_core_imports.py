"""The measuring core runs without Airflow: importing it loads no Airflow, Hub client, pandas or NVML."""

import json
import subprocess
import sys

import pytest

CORE = ["airflow_carbon", "airflow_carbon.meter", "airflow_carbon.cli", "airflow_carbon.record", "airflow_carbon.intensity",
        "airflow_carbon.summary", "airflow_carbon.export", "airflow_carbon.ui.charts", "airflow_carbon.ui.format"]
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


def test_the_record_module_imports_nothing_from_the_package():
    import ast
    from pathlib import Path

    import airflow_carbon.record as record

    tree = ast.parse(Path(record.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m and m.startswith("airflow")]
