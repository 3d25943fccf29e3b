"""Airflow layer: provider metadata (the ``apache_airflow_provider`` entry point).

Declarative only: importing this module imports nothing from Airflow, FastAPI, the Hub client or NVML.
The UI/listener plugin is registered through the ``airflow.plugins`` entry point alone (declaring it
here too would make Airflow report it twice).
"""

from __future__ import annotations

from typing import Any

from airflow_carbon._version import __version__
from airflow_carbon.core.options import Option, default_doc, default_text, expected, options_in

AIRFLOW_TYPES = {"str": "string", "choice": "string", "list": "string", "float": "float", "int": "integer", "bool": "boolean"}
"""The option table's types as Airflow's provider metadata names them."""


def _config_option(o: Option) -> dict[str, Any]:
    empty = "Empty: " if o.default is None or o.type == "list" else "Default: "
    return {
        "description": f"{o.doc[0].upper()}{o.doc[1:]}. Accepted: {expected(o, example=False)}. {empty}{default_doc(o)}.",
        "version_added": o.version_added,
        "type": AIRFLOW_TYPES[o.type],
        "example": o.example,
        "default": default_text(o),
    }


CONFIG_OPTIONS = {o.name: _config_option(o) for o in options_in("config")}
"""The ``[carbon]`` section as the provider declares it, generated from the option table
(:data:`airflow_carbon.core.options.OPTIONS`), which airflow_carbon.settings reads the config through."""


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
                "options": {name: dict(option) for name, option in CONFIG_OPTIONS.items()},
            }
        },
    }
