"""Airflow layer: one record per task try, every try kept, handed downstream through XCom.

Airflow clears a task instance's XComs when a new try starts, so a plain XCom would lose the energy of
failed tries. Each try pushes, in one write under the XCom key :data:`~airflow_carbon.xcom.XCOM_KEY`, the
records of every try so far and their totals (the ``summary``, one flat object the UI sums in the database):
the last try's XCom holds every try. Where a later try can follow (a failed try, which Airflow may retry),
the records are also kept in the task state store (``context["task_state_store"]``, Airflow 3.3+, which
survives retries) under :data:`STATE_KEY`; a try that succeeded or was skipped is followed by no retry, so it
skips that write (``keep_records_on_clear`` keeps it, for task instances that are cleared and run again). A
running try checkpoints its record into the store every ``checkpoint_interval_s``, so a try that is killed
(OOM, worker lost) without running its ``finally`` loses at most one interval; the next try marks it
``interrupted``.

The round trips of a try to Airflow's execution API: none at its start, one at its end (the XCom), plus one per
checkpoint while it runs, one more at the end where a retry can follow, and, for a try after the first, the
store's read (at its end, or at its start where a budget or a carbon-aware start needs the earlier tries).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from airflow_carbon.core.aggregate import task_summary
from airflow_carbon.core.budget import Budget, BudgetGuard, CarbonBudgetExceeded
from airflow_carbon.core.live import LiveIntensity
from airflow_carbon.core.record import COMPONENTS, Record, Status
from airflow_carbon.core.report import component_energy
from airflow_carbon.metrics import emit_power, emit_try
from airflow_carbon.settings import CarbonSettings
from airflow_carbon.start_planning import with_avoided
from airflow_carbon.xcom import STATE_KEY, XCOM_KEY, xcom_value

log = logging.getLogger(__name__)

FINAL = ("success", "skipped")
"""A try's outcomes that no retry follows: its record goes to XCom only (unless ``keep_records_on_clear``)."""


class TaskTracker:
    """Measures one try of a task: :meth:`start` before its work, :meth:`finish` after, whatever happens."""

    def __init__(self, settings: CarbonSettings, context: Any, *, intensity_warnings: Sequence[str] | None = None,
                 shift: dict[str, Any] | None = None) -> None:
        """``intensity_warnings``: what the record says about its grid intensity instead of the meter's own
        warnings (for a try whose rendered location was refused: why it is the world average). ``shift``: the
        try's carbon-aware start (:mod:`airflow_carbon.start_planning`), completed with its avoided grams."""
        self.settings = settings
        self.shift = shift
        self.live: LiveIntensity | None = None
        """The try's live source where its start was planned on it already (its Connection read once)."""
        self.guard: BudgetGuard | None = None
        self.intensity_warnings = None if intensity_warnings is None else tuple(intensity_warnings)
        self.context = context
        self.ti = context["ti"]
        self.store = context.get("task_state_store")
        self.meter = None
        self.previous: list[dict[str, Any]] | None = None
        """The earlier tries' records, once read (:meth:`earlier_records`)."""
        self.unrecorded: list[int] = []
        """Earlier tries of this task instance with no record in the task state store (:meth:`earlier_tries`)."""

    def identity(self) -> dict[str, Any]:
        ti = self.ti
        task = getattr(ti, "task", None)
        identity = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "try_number": ti.try_number,  # context["try_number"] is None at run time in 3.3
            "hostname": getattr(ti, "hostname", None),
            "queue": getattr(task, "queue", None),
        }
        if self.settings.training_type:
            identity["training_type"] = self.settings.training_type
        return identity

    def start(self) -> None:
        """Start measuring. The earlier tries' records (:meth:`earlier_records`, unless read already) are read now
        only where the try needs them before its work (a budget counts them), else when it checkpoints or ends.
        Never raises."""
        try:
            checkpoint = self._checkpoint if self.store is not None else None
            self.guard = self._budget_guard()
            self.meter = self.settings.meter(on_checkpoint=checkpoint, on_progress=self.guard, live=self.live)
            if self.intensity_warnings is not None:  # start() copies them into the record's warnings
                self.meter.intensity = replace(self.meter.intensity, warnings=self.intensity_warnings)
            if self.guard is not None:
                self.guard.arm()
            self.meter.start()
        except Exception as exc:  # measurement must never break the task
            self.meter = None
            warnings.warn(f"airflow-carbon could not start measuring: {exc!r}", stacklevel=2)

    @property
    def budget_stop(self) -> str | None:
        """Why the try was stopped by its budget (``on_budget_exceeded="stop"``); None where it was not."""
        return self.guard.message if self.guard is not None and self.guard.stopped else None

    def check_budget(self) -> None:
        """Before the work: CarbonBudgetExceeded where the earlier tries alone spent a ``stop`` budget."""
        if self.guard is not None:
            self.guard.check_before_start()

    def finish(self, status: str) -> list[dict[str, Any]]:
        """Stop measuring, keep this try's record beside the earlier ones, push them all. Never raises."""
        if self.guard is not None:
            self._disarm()
        previous = self.earlier_records()
        if self.meter is None:
            return previous
        try:
            record = self._annotate(self.meter.stop(), status)
        except Exception as exc:  # pragma: no cover - stop() itself never raises
            warnings.warn(f"airflow-carbon could not finish measuring: {exc!r}", stacklevel=2)
            return previous
        records = [*previous, record]
        if status not in FINAL or self.settings.keep_records_on_clear:
            self._save(records)  # a retry may follow: it starts from the store
        try:
            self.ti.xcom_push(key=XCOM_KEY, value=xcom_value(records, task_summary(records)))
        except Exception as exc:
            warnings.warn(f"airflow-carbon could not push its records to XCom: {exc!r}", stacklevel=2)
        emit_try(record)  # Airflow's [metrics]: StatsD / OpenTelemetry; never raises
        if self.guard is not None and self.guard.message:
            log.warning("airflow-carbon: %s", record["warnings"][-1])
        if self.shift is not None:
            log.info("airflow-carbon: carbon-aware start: %s; avoided %s g", record["shift"]["reason"],
                     "unknown" if record["shift"]["avoided_g"] is None else f"{record['shift']['avoided_g']:.4g}")
        log.info(
            "airflow-carbon: try %s %s: %.4g gCO2e; %s; %s",
            record["task"]["try_number"], status, record["emissions_g"],
            ", ".join(f"{name} {component_energy(record['components'][name])}" for name in COMPONENTS),
            "; ".join(record["warnings"]) or "no warnings",
        )
        return records

    # -- internals ---------------------------------------------------------------------------------
    def _annotate(self, record: Record, status: Status) -> Record:
        """The meter's record with the task try it measured (``task``) and its outcome (``status``)."""
        record["task"] = self.identity()
        record["status"] = status
        if self.unrecorded:
            tries = ", ".join(map(str, self.unrecorded))
            record["warnings"] = [*record["warnings"], (
                f"earlier tries without a record: {tries} (a try that succeeded or was skipped is kept in its XCom "
                "only, which Airflow deletes when the cleared task instance runs again: set keep_records_on_clear to "
                "keep it; or the try ended before it was measured)")]
        if self.shift is not None:
            record["shift"] = with_avoided(self.shift, record)  # type: ignore[typeddict-item]
        if self.guard is not None:
            budget = self.guard.budget
            record["budget"] = budget.entry(record["emissions_g"], record["energy_kwh"], stopped=self.guard.stopped)  # type: ignore[typeddict-item]
            if self.guard.message and status != "running":
                done = "the try was stopped" if self.guard.stopped else "on_budget_exceeded='warn': the try went on"
                record["warnings"] = [*record["warnings"], f"the task's budget is exceeded: {self.guard.message}; {done}"]
        return record

    def _budget_guard(self) -> BudgetGuard | None:
        s = self.settings
        if s.co2_budget_g is None and s.energy_budget_kwh is None:
            return None
        earlier = self.earlier_records()  # a budget counts the earlier tries: read before the work
        spent_g = sum(r.get("emissions_g") or 0.0 for r in earlier)
        spent_kwh = sum(r.get("energy_kwh") or 0.0 for r in earlier)
        return BudgetGuard(Budget(s.co2_budget_g, s.energy_budget_kwh, s.on_budget_exceeded, spent_g, spent_kwh, s.budget_grace_s))

    def _disarm(self) -> None:
        """Stop the budget's watch; a stop signal that lands meanwhile is already what the try failed of."""
        assert self.guard is not None
        for _ in range(3):
            try:
                self.guard.disarm()
                return
            except CarbonBudgetExceeded:  # the stop's signal, delivered as the work ended
                continue

    def earlier_records(self) -> list[dict[str, Any]]:
        """:meth:`earlier_tries`, read once; none (with a warning) where the task state store cannot be read."""
        if self.previous is None:
            try:
                self.previous = self.earlier_tries()
            except Exception as exc:
                warnings.warn(f"airflow-carbon could not read the earlier tries' records: {exc!r}", stacklevel=2)
                self.previous = []
        return self.previous

    def earlier_tries(self) -> list[dict[str, Any]]:
        """The records of this task instance's earlier tries (from the task state store)."""
        if self.store is None or self.ti.try_number <= 1:  # a first try has no earlier one: skip the round trip
            return []
        stored = self.store.get(STATE_KEY) or []
        this_try = self.ti.try_number
        earlier = [r for r in stored if isinstance(r, dict) and r.get("task", {}).get("try_number", 0) < this_try]
        kept = {r.get("task", {}).get("try_number") for r in earlier}
        self.unrecorded = [n for n in range(1, this_try) if n not in kept]
        for record in earlier:
            if record.get("status") == "running":  # its process died without finishing: killed
                record["status"] = "interrupted"
                record["warnings"] = [
                    *record.get("warnings", []),
                    "this try was killed (OOM, worker lost): energy after its last checkpoint "
                    f"(at most {self.settings.checkpoint_interval_s:g} s) is missing",
                ]
        return earlier

    def _checkpoint(self, record: dict[str, Any]) -> None:
        self._save([*self.earlier_records(), self._annotate(record, "running")])
        emit_power(record)  # the record annotated above: its task's tags

    def _save(self, records: list[dict[str, Any]]) -> None:
        if self.store is None:
            return
        try:
            from airflow_carbon.version_compat import NEVER_EXPIRE

            self.store.set(STATE_KEY, records, retention=NEVER_EXPIRE)
        except Exception as exc:
            warnings.warn(f"airflow-carbon could not save its records in the task state store: {exc!r}", stacklevel=2)


def status_of(exc: BaseException | None) -> str:
    """The try's outcome for the record: success, skipped or failed."""
    if exc is None:
        return "success"
    return "skipped" if any(c.__name__ == "AirflowSkipException" for c in type(exc).__mro__) else "failed"
