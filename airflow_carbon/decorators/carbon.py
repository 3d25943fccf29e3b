"""Airflow layer: ``@task.carbon``, a thin adapter over :class:`~airflow_carbon.operators.carbon.CarbonOperator`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory

from airflow_carbon.operators.carbon import CarbonOperator


class _CarbonDecoratedOperator(DecoratedOperator, CarbonOperator):
    """Runs the decorated function as a :class:`CarbonOperator`."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    custom_operator_name: str = "@task.carbon"

    def __init__(self, *, python_callable: Callable, op_args: Any, op_kwargs: Any, **kwargs: Any) -> None:
        kwargs_to_upstream = {"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs}
        super().__init__(
            kwargs_to_upstream=kwargs_to_upstream,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def carbon_task(python_callable: Callable | None = None, multiple_outputs: bool | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.carbon``: like ``@task``, with the callable's energy and emissions measured.

    Options: ``location``, ``g_per_kwh`` (gCO2e/kWh), ``pue``, ``sampling_interval_s`` (s),
    ``checkpoint_interval_s`` (s), ``training_type``; defaults from the ``[carbon]`` config section.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_CarbonDecoratedOperator,
        **kwargs,
    )
