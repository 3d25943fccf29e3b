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


INTENSITY_CONNECTIONS: dict[str, dict[str, Any]] = {
    "electricitymaps": {
        "hook-class-name": "airflow_carbon.hooks.grid_intensity.ElectricityMapsHook",
        "hook-name": "Electricity Maps",
        "connection-type": "electricitymaps",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "API token"},
            "placeholders": {
                "host": "https://api.electricitymap.org (empty: the public API)",
                "password": "your Electricity Maps API token (sent as the auth-token header)",
                "extra": '{"emission_factor": "lifecycle"} (or "direct")',
            },
        },
    },
    "watttime": {
        "hook-class-name": "airflow_carbon.hooks.grid_intensity.WattTimeHook",
        "hook-name": "WattTime",
        "connection-type": "watttime",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "API base URL", "login": "Username", "password": "Password"},
            "placeholders": {
                "host": "https://api.watttime.org (empty: the public API)",
                "login": "your WattTime username",
                "password": "your WattTime password (exchanged for a 30-minute token at /login)",
            },
        },
    },
    "uk_carbon_intensity": {
        "hook-class-name": "airflow_carbon.hooks.grid_intensity.UKCarbonIntensityHook",
        "hook-name": "GB Carbon Intensity",
        "connection-type": "uk_carbon_intensity",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "password", "extra"],
            "relabeling": {"host": "API base URL"},
            "placeholders": {"host": "https://api.carbonintensity.org.uk (empty: the public API; no key needed)"},
        },
    },
}
"""The Connection forms of the live grid-intensity sources (default ids ``<type>_default``)."""


INTENSITY_TRIGGER_MODULES: list[str] = ["airflow_carbon.triggers.carbon_intensity", "airflow_carbon.triggers.carbon_aware"]
"""The modules of the triggers that act on the live sources (the sensor's, and a tracked task's wait for its planned
start), listed under each source's integration (as their hooks)."""

INTENSITY_SENSOR_MODULES: list[str] = ["airflow_carbon.sensors.carbon_intensity"]
"""The modules of the sensors that read the live sources, listed under each source's integration."""


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager."""
    return {
        "package-name": "airflow-carbon",
        "name": "Carbon",
        "description": "Energy and carbon emissions of ML training tasks, measured on the worker.",
        "versions": [__version__],
        "task-decorators": [{"name": "carbon", "class-name": "airflow_carbon.decorators.carbon.carbon_task"}],
        "extra-links": ["airflow_carbon.links.carbon.CarbonEmissionsLink"],
        "db-managers": ["airflow_carbon.models.db_manager.CarbonDBManager"],
        "integrations": [
            {"integration-name": name, "external-doc-url": url, "tags": ["service"]}
            for name, url in (("Hugging Face Hub", "https://huggingface.co/docs/hub"),
                              ("Electricity Maps", "https://docs.electricitymaps.com"),
                              ("WattTime", "https://docs.watttime.org"),
                              ("GB Carbon Intensity", "https://carbon-intensity.github.io/api-definitions/"))
        ],
        "hooks": [
            {"integration-name": "Hugging Face Hub", "python-modules": ["airflow_carbon.hooks.huggingface"]},
            *({"integration-name": c["hook-name"], "python-modules": ["airflow_carbon.hooks.grid_intensity"]}
              for c in INTENSITY_CONNECTIONS.values()),
        ],
        "connection-types": [HUGGINGFACE_CONNECTION, *INTENSITY_CONNECTIONS.values()],
        "triggers": [{"integration-name": c["hook-name"], "python-modules": list(INTENSITY_TRIGGER_MODULES)}
                     for c in INTENSITY_CONNECTIONS.values()],
        "sensors": [{"integration-name": c["hook-name"], "python-modules": list(INTENSITY_SENSOR_MODULES)}
                    for c in INTENSITY_CONNECTIONS.values()],
        "config": {
            "carbon": {
                "description": "airflow-carbon: where tracked tasks run and how they are measured.",
                "options": {name: dict(option) for name, option in CONFIG_OPTIONS.items()},
            }
        },
    }
