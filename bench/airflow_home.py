"""A fresh Airflow home for a bench (SQLite, no examples, one DAGs folder), its metadata database migrated and its
DAGs serialized, as Airflow's own CLI does it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def fresh_home(prefix: str, dags_folder: str | os.PathLike[str], **env: str) -> tuple[str, dict[str, str]]:
    """(home, environment): a new AIRFLOW_HOME under the temp folder, and the environment (this process's with
    the home, the DAGs folder and ``env``) in which ``airflow db migrate`` and ``airflow dags reserialize`` ran."""
    home = tempfile.mkdtemp(prefix=prefix)
    environment = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder), **env}
    airflow = str(Path(sys.executable).with_name("airflow"))
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([airflow, *args], env=environment, check=True, capture_output=True)
    return home, environment
