"""Airflow layer: measure operators. ``CarbonOperator`` (a PythonOperator), and any operator through
:class:`CarbonTrackingMixin` or :func:`tracked`::

    TrackedBash = tracked(BashOperator)
    TrackedBash(task_id="train", bash_command="torchrun train.py", location="FR")

The measurement wraps ``execute``: the operator itself is unchanged, and a failing meter never fails
the task (it warns, and the record says what is missing).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Callable

from airflow.providers.standard.operators.python import PythonOperator

from airflow_carbon.links.carbon import CarbonEmissionsLink
from airflow_carbon.settings import CarbonSettings
from airflow_carbon.task_tracking import TaskTracker, status_of


class CarbonTrackingMixin:
    """Put first among the bases of an operator class to measure its ``execute``.

    Arguments (all optional; defaults from the ``[carbon]`` config section): ``location``,
    ``g_per_kwh`` (gCO2e/kWh), ``pue`` (>= 1.0), ``sampling_interval_s`` (s), ``checkpoint_interval_s``
    (s), ``training_type`` ("fine-tuning" or "pre-training", for the model card). Bad values raise
    ValueError when the DAG is parsed. A task without a ``queue`` gets ``[carbon] gpu_queue``.
    """

    operator_extra_links = (CarbonEmissionsLink(),)
    carbon_tracked = True
    """Marks operators measured by themselves, so that the listener never measures them twice."""

    def __init__(
        self,
        *,
        location: str | None = None,
        g_per_kwh: float | None = None,
        pue: float | None = None,
        sampling_interval_s: float | None = None,
        checkpoint_interval_s: float | None = None,
        training_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        settings = CarbonSettings.from_config().merged(
            location=location,
            g_per_kwh=g_per_kwh,
            pue=pue,
            sampling_interval_s=sampling_interval_s,
            checkpoint_interval_s=checkpoint_interval_s,
            training_type=training_type,
        )
        # default_args reach here unapplied (for **kwargs signatures): a queue there counts as given
        given = "queue" in kwargs or "queue" in (kwargs.get("default_args") or {})
        route_to_gpu_queue(kwargs, settings.gpu_queue, explicit=given)
        super().__init__(**kwargs)
        self.carbon_settings = settings

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``; the mapped task goes to ``[carbon] gpu_queue`` as an unmapped one would."""
        partial = super().partial(**kwargs)  # type: ignore[misc]
        route_to_gpu_queue(partial.kwargs, CarbonSettings.from_config().gpu_queue, explicit="queue" in kwargs)
        return partial

    def execute(self, context: Any) -> Any:
        tracker = TaskTracker(self.carbon_settings, context)
        tracker.start()
        error: BaseException | None = None
        try:
            return super().execute(context)  # type: ignore[misc]
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracker.finish(status_of(error))


def route_to_gpu_queue(task_kwargs: dict[str, Any], gpu_queue: str | None, *, explicit: bool = False) -> None:
    """The one rule for a tracked task's queue: ``gpu_queue`` (``[carbon] gpu_queue``) unless a queue was
    given (``explicit``, or a queue other than Airflow's default in ``task_kwargs``). Applied to an
    operator's arguments, and to a mapped task's partial arguments (its ``__init__`` never runs when the
    DAG is parsed, and Airflow fills in the default queue there)."""
    if gpu_queue and not explicit and task_kwargs.get("queue") in (None, _default_queue()):
        task_kwargs["queue"] = gpu_queue


@cache
def _default_queue() -> str:
    from airflow.sdk import conf

    return conf.get("operators", "default_queue")


def _own_init(self: Any, **kwargs: Any) -> None:
    CarbonTrackingMixin.__init__(self, **kwargs)


# Airflow's operator metaclass applies default_args only to an __init__ that the class itself defines
# (not one inherited from its first base), so each tracked class gets its own.
_own_init.__doc__ = CarbonTrackingMixin.__doc__


class CarbonOperator(CarbonTrackingMixin, PythonOperator):
    """A PythonOperator whose callable's energy and emissions are measured (``python_callable``,
    ``op_args``, ``op_kwargs`` as usual, plus the options of :class:`CarbonTrackingMixin`)."""

    ui_color = "#c8e6c9"

    def __init__(self, **kwargs: Any) -> None:
        _own_init(self, **kwargs)


@cache
def tracked(operator_class: type) -> type:
    """``operator_class`` with its ``execute`` measured: ``tracked(BashOperator)(task_id=..., ...)``."""
    if getattr(operator_class, "carbon_tracked", False):
        return operator_class
    return type(
        f"Carbon{operator_class.__name__}",
        (CarbonTrackingMixin, operator_class),
        {
            "__module__": operator_class.__module__,
            "__doc__": f"{operator_class.__name__}, measured by airflow-carbon.",
            "__init__": lambda self, **kwargs: _own_init(self, **kwargs),
        },
    )
