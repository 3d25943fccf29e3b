"""Airflow layer: one record per task try, every try kept, handed downstream through XCom.

Airflow clears a task instance's XComs when a new try starts, so a plain XCom would lose the energy of
failed tries. The records of every try are kept in the task state store (``context["task_state_store"]``,
Airflow 3.3+, which survives retries) under :data:`STATE_KEY`, and each try pushes the whole list under
the XCom key :data:`~airflow_carbon.xcom.XCOM_KEY`: the last try's XCom holds every try; their totals go
beside it under :data:`~airflow_carbon.xcom.SUMMARY_XCOM_KEY`, one flat object the UI can sum in the
database. A running try checkpoints its record into the store every ``checkpoint_interval_s``, so a try
that is killed (OOM, worker lost) without running its ``finally`` loses at most one interval; the next
try marks it ``interrupted``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from airflow_carbon.core.aggregate import task_summary
from airflow_carbon.core.record import COMPONENTS, Record, Status
from airflow_carbon.core.report import component_energy
from airflow_carbon.settings import CarbonSettings
from airflow_carbon.xcom import STATE_KEY, SUMMARY_XCOM_KEY, XCOM_KEY

log = logging.getLogger(__name__)


class TaskTracker:
    """Measures one try of a task: :meth:`start` before its work, :meth:`finish` after, whatever happens."""

    def __init__(self, settings: CarbonSettings, context: Any, *, intensity_warnings: Sequence[str] | None = None) -> None:
        """``intensity_warnings``: what the record says about its grid intensity instead of the meter's own
        warnings (for a try whose rendered location was refused: why it is the world average)."""
        self.settings = settings
        self.intensity_warnings = None if intensity_warnings is None else tuple(intensity_warnings)
        self.context = context
        self.ti = context["ti"]
        self.store = context.get("task_state_store")
        self.meter = None
        self.previous: list[dict[str, Any]] = []

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
        """Load the earlier tries' records and start measuring. Never raises."""
        try:
            self.previous = self._earlier_tries()
            checkpoint = self._checkpoint if self.store is not None else None
            self.meter = self.settings.meter(on_checkpoint=checkpoint)
            if self.intensity_warnings is not None:  # start() copies them into the record's warnings
                self.meter.intensity = replace(self.meter.intensity, warnings=self.intensity_warnings)
            self.meter.start()
        except Exception as exc:  # measurement must never break the task
            self.meter = None
            warnings.warn(f"airflow-carbon could not start measuring: {exc!r}", stacklevel=2)

    def finish(self, status: str) -> list[dict[str, Any]]:
        """Stop measuring, keep this try's record beside the earlier ones, push them all. Never raises."""
        if self.meter is None:
            return self.previous
        try:
            record = self._annotate(self.meter.stop(), status)
        except Exception as exc:  # pragma: no cover - stop() itself never raises
            warnings.warn(f"airflow-carbon could not finish measuring: {exc!r}", stacklevel=2)
            return self.previous
        records = [*self.previous, record]
        self._save(records)
        try:
            self.ti.xcom_push(key=XCOM_KEY, value=records)
            self.ti.xcom_push(key=SUMMARY_XCOM_KEY, value=task_summary(records))
        except Exception as exc:
            warnings.warn(f"airflow-carbon could not push its records to XCom: {exc!r}", stacklevel=2)
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
        return record

    def _earlier_tries(self) -> list[dict[str, Any]]:
        if self.store is None or self.ti.try_number <= 1:  # a first try has no earlier one: skip the round trip
            return []
        stored = self.store.get(STATE_KEY) or []
        this_try = self.ti.try_number
        earlier = [r for r in stored if isinstance(r, dict) and r.get("task", {}).get("try_number", 0) < this_try]
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
        self._save([*self.previous, self._annotate(record, "running")])

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
