"""airflow-carbon: the energy and carbon emissions of ML training tasks, measured on the worker.

The public API is small and imported lazily, so ``import airflow_carbon`` costs next to nothing (every
Airflow task process imports plugins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "EnergyMeter": "airflow_carbon.meter",
    "MeterWarning": "airflow_carbon.meter",
    "measure": "airflow_carbon.meter",
    "GridIntensity": "airflow_carbon.intensity",
    "UnknownLocationError": "airflow_carbon.intensity",
    "resolve_intensity": "airflow_carbon.intensity",
    "RecordError": "airflow_carbon.record",
    "load_record": "airflow_carbon.record",
    "validate_record": "airflow_carbon.record",
    "CardError": "airflow_carbon.card_text",
    "edit_card_metadata": "airflow_carbon.card_text",
    # Airflow layer (importing these imports Airflow)
    "CarbonOperator": "airflow_carbon.operators.carbon",
    "CarbonTrackingMixin": "airflow_carbon.operators.carbon",
    "tracked": "airflow_carbon.operators.carbon",
    "XCOM_KEY": "airflow_carbon.task_tracking",
    "PublishModelCardOperator": "airflow_carbon.operators.model_card",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from airflow_carbon.card_text import CardError, edit_card_metadata
    from airflow_carbon.intensity import GridIntensity, UnknownLocationError, resolve_intensity
    from airflow_carbon.meter import EnergyMeter, MeterWarning, measure
    from airflow_carbon.operators.carbon import CarbonOperator, CarbonTrackingMixin, tracked
    from airflow_carbon.operators.model_card import PublishModelCardOperator
    from airflow_carbon.task_tracking import XCOM_KEY
    from airflow_carbon.record import RecordError, load_record, validate_record


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_carbon' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
