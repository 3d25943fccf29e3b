"""Airflow layer: ``PublishModelCardOperator``: a DAG run's records -> the model card's ``co2_eq_emissions``.

It reads the records of the run from XCom (every tracked task by default, every mapped instance, every
try; optionally earlier runs too) one task instance at a time, in constant memory, validates them,
computes the Hub's five fields, and publishes them to a Hub model repo or a local model folder (the
card's other content kept byte for byte). Its return value (XCom) is the metadata, the totals and the
breakdown of the first :data:`BREAKDOWN_ROWS` tries. The Hub token comes from an Airflow
Connection (:class:`~airflow_carbon.hooks.huggingface.HuggingFaceHook`: password) or HF_TOKEN, and never
reaches logs, XCom or rendered fields.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_carbon.card.metadata import co2_eq_emissions, combine, validate_training_type
from airflow_carbon.card.publish import Exports, MakeCo2, Published, publish_hub, publish_local
from airflow_carbon.core.aggregate import Aggregate, breakdown
from airflow_carbon.core.export import ExportFiles
from airflow_carbon.core.record import Record, sort_key
from airflow_carbon.hooks.huggingface import HuggingFaceHook
from airflow_carbon.xcom import MODEL_CARD_XCOM_KEY, XCOM_KEY, iter_records

ON_EXISTING = ("fail", "replace", "add")
IF_NO_RECORDS = ("fail", "skip")
BREAKDOWN_ROWS = 1000
"""Tries the return value's breakdown lists (the first in task order); ``breakdown_omitted`` counts the rest."""

class PublishModelCardOperator(BaseOperator):
    """Publish the ``co2_eq_emissions`` of this DAG run's tracked tasks to a model card.

    :param repo_id: Hub model repo ("org/model"); or
    :param local_dir: a local model folder (its README.md is created with a minimal card if missing).
    :param training_type: "pre-training" or "fine-tuning" (other text accepted with a warning).
    :param task_ids: tasks whose records count (default: every task of the DAG that pushed records).
    :param include_run_ids: earlier runs of this DAG whose records also count (e.g. a sweep's runs): a
        list, or (as a rendered template gives) text with run ids separated by commas or whitespace.
    :param on_existing: when the card has co2_eq_emissions from elsewhere: "fail" (default), "replace", "add".
    :param if_no_records: "fail" (default) or "skip".
    :param export_records: also write emissions.json and a CodeCarbon-style emissions.csv beside the card.
    :param hf_conn_id: Connection with the Hub token (password) and optionally the endpoint (host).
    :param create_pr, revision, commit_message: as ``huggingface_hub``'s ``create_commit``.
    :param hub_timeout_s: seconds each read from the Hub may take (default 30).
    """

    template_fields: Sequence[str] = ("repo_id", "local_dir", "revision", "commit_message", "include_run_ids")
    ui_color = "#ffe082"

    def __init__(
        self,
        *,
        training_type: str,
        repo_id: str | None = None,
        local_dir: str | None = None,
        task_ids: Sequence[str] | None = None,
        include_run_ids: Sequence[str] | str | None = None,
        on_existing: str = "fail",
        if_no_records: str = "fail",
        export_records: bool = False,
        hf_conn_id: str = "huggingface_default",
        create_pr: bool = False,
        revision: str | None = None,
        commit_message: str | None = None,
        hub_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (repo_id is None) == (local_dir is None):
            raise ValueError(
                "give exactly one of repo_id (a Hub model repo, 'org/model') or local_dir (a folder); "
                f"got repo_id={repo_id!r}, local_dir={local_dir!r}"
            )
        if on_existing not in ON_EXISTING:
            raise ValueError(f"on_existing={on_existing!r} is invalid; expected one of {', '.join(ON_EXISTING)}")
        if if_no_records not in IF_NO_RECORDS:
            raise ValueError(f"if_no_records={if_no_records!r} is invalid; expected one of {', '.join(IF_NO_RECORDS)}")
        self.training_type = validate_training_type(training_type)
        self.repo_id, self.local_dir = repo_id, local_dir
        self.task_ids = list(task_ids) if task_ids is not None else None
        self.include_run_ids = include_run_ids or []
        self.on_existing, self.if_no_records, self.export_records = on_existing, if_no_records, export_records
        self.hf_conn_id, self.create_pr, self.revision, self.commit_message = hf_conn_id, create_pr, revision, commit_message
        self.hub_timeout_s = hub_timeout_s

    def _task_ids(self) -> list[str]:
        if self.task_ids is not None:
            return self.task_ids
        return [t for t in self.dag.task_ids if t != self.task_id]

    def records(self, context: Any) -> Iterator[Record]:
        """Every record of the run (and of ``include_run_ids``), validated, one task instance's at a time."""
        earlier = self.include_run_ids
        if isinstance(earlier, str):
            earlier = earlier.replace(",", " ").split()
        run_id = context["ti"].run_id
        return iter_records(context, self._task_ids(), [run_id, *[r for r in earlier if r != run_id]])

    def _publish(self, make: MakeCo2, exports: Exports) -> Published:
        """Write the card's ``co2_eq_emissions`` (``make``) and ``exports`` to ``local_dir``, else to the Hub repo."""
        if self.local_dir is not None:
            return publish_local(self.local_dir, make, exports)
        endpoint, token = HuggingFaceHook(hf_conn_id=self.hf_conn_id).get_credentials()
        return publish_hub(
            self.repo_id, make, exports, endpoint=endpoint, token=token, revision=self.revision,  # type: ignore[arg-type]
            create_pr=self.create_pr, commit_message=self.commit_message, timeout_s=self.hub_timeout_s,
        )

    def execute(self, context: Any) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory(prefix="airflow-carbon-export-") as tmp:
            # One pass over the records, in constant memory: the card's fields and the totals, the first
            # BREAKDOWN_ROWS tries of the breakdown, and (export_records) the files, written as they come.
            aggregate = Aggregate()
            export = ExportFiles(tmp) if self.export_records else None

            def counted(records: Iterable[Record]) -> Iterator[Record]:
                for record in records:
                    aggregate.add(record)
                    if export is not None:
                        export.add(record)
                    yield record

            try:
                first = heapq.nsmallest(BREAKDOWN_ROWS, counted(self.records(context)), key=sort_key)
            finally:
                exports: Exports = export.close() if export is not None else {}  # type: ignore[assignment]
            if not aggregate.tries:
                message = (
                    f"no airflow-carbon records in XCom key {XCOM_KEY!r} of tasks {', '.join(self._task_ids()) or '(none)'} "
                    "of this DAG run: decorate the training tasks with @task.carbon (or use CarbonOperator / tracked())"
                )
                if self.if_no_records == "skip":
                    from airflow.sdk.exceptions import AirflowSkipException

                    raise AirflowSkipException(message)
                raise ValueError(message)
            origin = f"DAG {self.dag_id}"
            ours = co2_eq_emissions(aggregate, self.training_type, origin=origin)
            make = lambda existing: ours if existing is None else combine(existing, ours, self.on_existing, origin)  # noqa: E731
            published = self._publish(make, exports)
        self.log.info(
            "co2_eq_emissions %s to %s: %s", "written" if published.changed else "unchanged", published.location, published.co2_eq_emissions
        )
        context["ti"].xcom_push(key=MODEL_CARD_XCOM_KEY, value=published.to_dict())
        rows = breakdown(first)
        return {**published.to_dict(), "totals": aggregate.totals(), "breakdown": rows,
                "breakdown_omitted": aggregate.tries - len(rows)}
