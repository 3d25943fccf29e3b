"""Airflow layer: measure operators. ``CarbonOperator`` (a PythonOperator), and any operator through
:class:`CarbonTrackingMixin` or :func:`tracked`::

    TrackedBash = tracked(BashOperator)
    TrackedBash(task_id="train", bash_command="torchrun train.py", location="FR")

The measurement wraps ``execute``: the operator itself is unchanged, and a failing meter never fails
the task (it warns, and the record says what is missing).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace
from functools import cache
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator

from airflow_carbon.core.intensity import resolve_intensity
from airflow_carbon.core.options import is_template, options_in, with_option_docs
from airflow_carbon.settings import CarbonSettings
from airflow_carbon.start_planning import plan_try, recent_records, started
from airflow_carbon.task_tracking import TaskTracker, status_of
from airflow_carbon.triggers.carbon_aware import CarbonAwareStartTrigger

log = logging.getLogger(__name__)

TASK_OPTIONS: tuple[str, ...] = tuple(o.name for o in options_in("task"))
"""The tracked operators' own keyword arguments: the option table's task options."""

TEMPLATED_OPTIONS: tuple[str, ...] = tuple(o.name for o in options_in("task") if o.templated)
"""Task options that may be Jinja templates: rendered with the try's context when it starts, then validated.

They are not added to the operator's ``template_fields``: Airflow serialises every template field of every
try into its rendered fields (about 1 ms a field, a try, on this machine's bench), and the rendered value is
in the record (``intensity.location``, ``intensity.g_per_kwh``, ``pue``) anyway."""


def carbon_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The task options among an operator's keyword arguments, taken out of ``kwargs``."""
    return {name: kwargs.pop(name) for name in TASK_OPTIONS if name in kwargs}


def parse_time_settings(arguments: dict[str, Any]) -> CarbonSettings:
    """``[carbon]`` merged with a task's arguments, validated (ValueError: a DAG import error). A value
    that is a template (``"{{ params.region }}"``) cannot be checked yet: it is validated once rendered."""
    return CarbonSettings.from_config().merged(**{k: v for k, v in arguments.items() if not is_template(v)})


class CarbonTrackingMixin:
    """Put first among the bases of an operator class to measure its ``execute``.

    Arguments (all optional; defaults from the ``[carbon]`` config section) are listed below. Bad values
    raise ValueError when the DAG is parsed. A templated one (``location="{{ params.region }}"``) is
    rendered with the try's context and validated when the task starts: a bad rendered value fails the task with the
    same message, and the try still gets its record (the world-average intensity and a warning naming the
    value). A task without a ``queue`` gets ``[carbon] gpu_queue``.

    Options (generated from the option table, :data:`airflow_carbon.core.options.OPTIONS`):
    """

    __doc__ = with_option_docs(__doc__, "task")

    carbon_tracked = True
    """Marks operators measured by themselves, so that the listener never measures them twice."""

    def __init__(self, **kwargs: Any) -> None:
        arguments = carbon_arguments(kwargs)
        settings = parse_time_settings(arguments)
        # default_args reach here unapplied (for **kwargs signatures): a queue there counts as given
        given = "queue" in kwargs or "queue" in (kwargs.get("default_args") or {})
        route_to_gpu_queue(kwargs, settings.gpu_queue, explicit=given)
        super().__init__(**kwargs)
        self.carbon_settings = settings
        self.carbon_templates = {name: arguments[name] for name in TEMPLATED_OPTIONS if is_template(arguments.get(name))}
        """The task options given as templates, rendered when a try starts."""

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """As ``BaseOperator.partial``, with the task options (validated now, as for an unmapped task; each
        mapped instance gets them); the mapped task goes to ``[carbon] gpu_queue`` as an unmapped one would."""
        arguments = carbon_arguments(kwargs)  # not __init__ parameters Airflow can see: it would refuse them
        settings = parse_time_settings(arguments)
        partial = super().partial(**kwargs)  # type: ignore[misc]
        partial.kwargs.update(arguments)
        route_to_gpu_queue(partial.kwargs, settings.gpu_queue, explicit="queue" in kwargs)
        return partial

    def execute(self, context: Any) -> Any:
        settings = self.carbon_settings
        if self.carbon_templates:  # rendered as Airflow renders template fields: the DAG's Jinja environment
            try:
                settings = settings.merged(**{k: self.render_template(v, context) for k, v in self.carbon_templates.items()})  # type: ignore[attr-defined]
            except Exception as exc:  # a bad rendered value, or a template that does not render
                _record_refused_try(self, context, exc)
                raise
        tracker = TaskTracker(settings, context)  # reads the earlier tries' records when the try ends, or when asked
        shift = self.__dict__.pop("_carbon_resumed_shift", None)
        if shift is not None:  # resumed after the wait (execute_after_wait)
            tracker.shift = started(shift, deferred=True)
        elif settings.start_within is not None:
            tracker.live = settings.live_intensity(resolve_intensity(settings.location, settings.g_per_kwh))
            plan, planned = plan_try(settings, tracker.live, recent_records(context["ti"], tracker.earlier_records()))
            if plan.wait_s > 0:
                log.info("airflow-carbon: %s; deferring until %s", plan.reason, planned["planned_start"])
                self.defer(  # type: ignore[attr-defined]
                    trigger=CarbonAwareStartTrigger(plan.planned_start_s, planned), method_name="execute_after_wait",
                )
            log.info("airflow-carbon: carbon-aware start: %s", plan.reason)
            tracker.shift = started(planned, deferred=False)
        return self._execute_tracked(context, tracker)

    def execute_after_wait(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Where a try resumes after waiting for its greener start: the work, measured, with the wait recorded."""
        shift = (event or {}).get("shift")
        if not isinstance(shift, dict):  # pragma: no cover - an event this trigger does not send
            raise ValueError(f"airflow-carbon: resumed with an unexpected trigger event {event!r}")
        self._carbon_resumed_shift = shift
        return self.execute(context)  # through the operator's own execute (a decorated task's included)

    def _execute_tracked(self, context: Any, tracker: TaskTracker) -> Any:
        """The operator's own ``execute``, measured; a budget stop fails the task without further retries."""
        tracker.start()
        error: BaseException | None = None
        try:
            tracker.check_budget()
            result = super().execute(context)  # type: ignore[misc]
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracker.finish(status_of(error) if tracker.budget_stop is None else "failed")
            if tracker.budget_stop is not None:  # whatever the work raised (or not) once it was stopped
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"airflow-carbon: the task's budget is exceeded: {tracker.budget_stop}; "
                                           "the try was stopped and the task fails without further retries") from error
        return result


_P = inspect.Parameter
CarbonTrackingMixin.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_P("self", _P.POSITIONAL_OR_KEYWORD), *(_P(name, _P.KEYWORD_ONLY, default=None) for name in TASK_OPTIONS),
     _P("kwargs", _P.VAR_KEYWORD)]
)
"""What help() and inspect show: the task options (None: the ``[carbon]`` value), then the operator's own."""


def _record_refused_try(task: Any, context: Any, error: Exception) -> None:
    """A try whose rendered options are bad fails, and still gets its record: its (short) window, measured
    with the world-average intensity and the parse-time settings, with a warning naming the bad value."""
    fallback = replace(task.carbon_settings, location=None, g_per_kwh=None)
    warning = (
        f"this try failed before its work: a templated option did not render to a valid value ({error}); "
        "its energy is counted at the world-average grid intensity"
    )
    tracker = TaskTracker(fallback, context, intensity_warnings=[warning])
    tracker.start()
    tracker.finish("failed")


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
