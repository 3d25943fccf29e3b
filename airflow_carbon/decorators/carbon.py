"""Airflow layer: ``@task.carbon``, a thin adapter over :class:`~airflow_carbon.operators.carbon.CarbonOperator`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attr
from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, _TaskDecorator

from airflow_carbon.core.options import with_option_docs
from airflow_carbon.operators.carbon import TASK_OPTIONS, CarbonOperator, parse_time_settings, route_to_gpu_queue


class _CarbonDecoratedOperator(DecoratedOperator, CarbonOperator):
    """Runs the decorated function as a :class:`CarbonOperator`."""

    # PythonOperator's (the templated task options are rendered by CarbonTrackingMixin.execute)
    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
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

    Options, besides ``@task``'s (defaults from the ``[carbon]`` config section; generated from the
    option table, :data:`airflow_carbon.core.options.OPTIONS`):
    """
    def decorate(function: Callable) -> TaskDecorator:
        if not callable(function):
            raise TypeError("No positional arguments allowed while using @task.carbon, use named arguments instead")
        return _CarbonTaskDecorator(  # type: ignore[return-value]
            function=function,
            multiple_outputs=attr.NOTHING if multiple_outputs is None else multiple_outputs,
            operator_class=_CarbonDecoratedOperator,
            kwargs=kwargs,
        )

    return decorate(python_callable) if python_callable is not None else decorate  # type: ignore[return-value]


carbon_task.__doc__ = with_option_docs(carbon_task.__doc__, "task")


class _CarbonTaskDecorator(_TaskDecorator):
    """Airflow's task decorator (as ``task_decorator_factory`` builds it; Airflow has no public subclass
    hook), with the options validated and the gpu queue applied to mapped tasks, whose operator
    ``__init__`` runs only on workers."""

    def _expand(self, expand_input: Any, *, strict: bool) -> Any:
        settings = parse_time_settings({k: v for k, v in self.kwargs.items() if k in TASK_OPTIONS})
        xcom_arg = super()._expand(expand_input, strict=strict)
        route_to_gpu_queue(xcom_arg.operator.partial_kwargs, settings.gpu_queue, explicit="queue" in self.kwargs)
        return xcom_arg
