"""airflow-carbon: the energy and carbon emissions of ML training tasks, measured on the worker.

The public API is small and imported lazily, so ``import airflow_carbon`` costs next to nothing (every
Airflow task process imports plugins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_carbon._version import __version__

_EXPORTS = {
    "EnergyMeter": "airflow_carbon.core.meter",
    "MeterWarning": "airflow_carbon.core.meter",
    "measure": "airflow_carbon.core.meter",
    "GridIntensity": "airflow_carbon.core.intensity",
    "UnknownLocationError": "airflow_carbon.core.intensity",
    "resolve_intensity": "airflow_carbon.core.intensity",
    "RecordError": "airflow_carbon.core.record",
    "load_record": "airflow_carbon.core.record",
    "validate_record": "airflow_carbon.core.record",
    "CardError": "airflow_carbon.card.text",
    "edit_card_metadata": "airflow_carbon.card.text",
    # Airflow layer (importing these imports Airflow)
    "CarbonOperator": "airflow_carbon.operators.carbon",
    "CarbonTrackingMixin": "airflow_carbon.operators.carbon",
    "tracked": "airflow_carbon.operators.carbon",
    "XCOM_KEY": "airflow_carbon.xcom",
    "records_in": "airflow_carbon.xcom",
    "PublishModelCardOperator": "airflow_carbon.operators.model_card",
    "CarbonBudgetOperator": "airflow_carbon.operators.budget",
    "CarbonBudgetExceeded": "airflow_carbon.core.budget",
    "HuggingFaceHook": "airflow_carbon.hooks.huggingface",
    "CarbonIntensitySensor": "airflow_carbon.sensors.carbon_intensity",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from airflow_carbon.card.text import CardError, edit_card_metadata
    from airflow_carbon.core.budget import CarbonBudgetExceeded
    from airflow_carbon.core.intensity import GridIntensity, UnknownLocationError, resolve_intensity
    from airflow_carbon.core.meter import EnergyMeter, MeterWarning, measure
    from airflow_carbon.core.record import RecordError, load_record, validate_record
    from airflow_carbon.hooks.huggingface import HuggingFaceHook
    from airflow_carbon.operators.budget import CarbonBudgetOperator
    from airflow_carbon.operators.carbon import CarbonOperator, CarbonTrackingMixin, tracked
    from airflow_carbon.operators.model_card import PublishModelCardOperator
    from airflow_carbon.sensors.carbon_intensity import CarbonIntensitySensor
    from airflow_carbon.xcom import XCOM_KEY, records_in


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_carbon' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
