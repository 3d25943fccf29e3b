"""airflow-carbon's test harnesses, shared by tests/ and bench/ (a development-only distribution,
``testing/pyproject.toml``, installed editable by ``make setup``; not part of the airflow-carbon wheel).

- :mod:`carbon_testing.fake_nvml`: a simulated NVIDIA GPU, a fake ``libnvidia-ml.so.1`` built with
  ``cc`` and loaded by the real ``pynvml`` (stdlib + ctypes only);
- :mod:`carbon_testing.hubsim`: a local HTTP server speaking the Hugging Face Hub API;
- :mod:`carbon_testing.cluster`: a real Airflow CeleryExecutor cluster (PostgreSQL, Redis, api-server,
  scheduler, dag-processor, workers);
- :mod:`carbon_testing.ui_server` and :mod:`carbon_testing.ui_auth`: a real ``airflow api-server``
  with a DAG-scoped SimpleAuthManager.

Importing this package imports nothing else (worker processes import ``carbon_testing.cluster.hostname``).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root (this package is used from its source tree: an editable install), for the paths
harness code needs there: ``build/fake-nvml``, ``tests/...``."""
