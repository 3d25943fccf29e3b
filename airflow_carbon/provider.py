"""Airflow layer: provider metadata (the ``apache_airflow_provider`` entry point).

Declarative only: importing this module imports nothing from Airflow, FastAPI, the Hub client or NVML.
The UI/listener plugin is registered through the ``airflow.plugins`` entry point alone (declaring it
here too would make Airflow report it twice).
"""

from __future__ import annotations

from typing import Any

from airflow_carbon._version import __version__

CONFIG_OPTIONS = {
    # option: (type, default, description); airflow_carbon.settings reads the config through this table
    "location": ("string", "", "Where tracked tasks run: ISO country (FR), region (US-CA, CA-QC) or cloud region (gcp:us-central1). Empty: world average, with a warning."),
    "g_per_kwh": ("float", "", "Grid intensity in gCO2e/kWh, overriding the location's figure. Empty: from the location."),
    "pue": ("float", "1.0", "Data-centre power usage effectiveness (>= 1.0) applied to measured IT energy."),
    "sampling_interval_s": ("float", "0.1", "Seconds between GPU power samples."),
    "checkpoint_interval_s": ("float", "60.0", "Seconds between checkpoints of a running try's record into the task state store (a killed try loses at most this much)."),
    "gpu_queue": ("string", "", "Queue given to tracked tasks that set none, so that they land on GPU workers. Empty: Airflow's default queue."),
    "auto_track": ("boolean", "False", "Measure every task that matches auto_track_queues / auto_track_pools through the listener, without decorating it."),
    "auto_track_queues": ("string", "", "Comma-separated queues whose tasks the listener measures (with auto_track). Empty: any queue."),
    "auto_track_pools": ("string", "", "Comma-separated pools whose tasks the listener measures (with auto_track). Empty: any pool."),
}


HUGGINGFACE_CONNECTION = {
    "hook-class-name": "airflow_carbon.hooks.huggingface.HuggingFaceHook",
    "hook-name": "Hugging Face Hub",
    "connection-type": "huggingface",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "Hub endpoint", "password": "Access token"},
        "placeholders": {"host": "https://huggingface.co", "password": "hf_... (a token with write access to the model repo)"},
    },
}
"""The Connection form of ``huggingface`` Connections (declared here, so Airflow shows it without importing the hook)."""


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager."""
    return {
        "package-name": "airflow-carbon",
        "name": "Carbon",
        "description": "Energy and carbon emissions of ML training tasks, measured on the worker.",
        "versions": [__version__],
        "task-decorators": [{"name": "carbon", "class-name": "airflow_carbon.decorators.carbon.carbon_task"}],
        "extra-links": ["airflow_carbon.links.carbon.CarbonEmissionsLink"],
        "hooks": [{"integration-name": "Hugging Face Hub", "python-modules": ["airflow_carbon.hooks.huggingface"]}],
        "connection-types": [HUGGINGFACE_CONNECTION],
        "config": {
            "carbon": {
                "description": "airflow-carbon: where tracked tasks run and how they are measured.",
                "options": {
                    name: {"description": text, "version_added": None, "type": kind, "example": None, "default": default}
                    for name, (kind, default, text) in CONFIG_OPTIONS.items()
                },
            }
        },
    }
