"""Airflow layer: the FastAPI app mounted at ``/carbon`` by the api-server: pages and JSON/CSV endpoints.

Every route needs an authenticated Airflow user (Airflow's own dependency: the UI's ``_token`` cookie or
a Bearer token) and shows only DAGs the auth manager lets that user read: another DAG is answered
exactly like a DAG that does not exist, and never counted in totals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_carbon.core.export import records_csv
from airflow_carbon.core.record import COMPONENTS, task_label
from airflow_carbon.ui import charts, views
from airflow_carbon.ui import format as fmt
from airflow_carbon.ui.views import BadParameter

MOUNT = "/carbon"
NOT_FOUND = "no such DAG, run or task, or you may not read it"

DOWNLOADS = ("json", "csv")


def readable_dag_ids(user: GetUserDep) -> set[str]:
    """The DAG ids the user may read (``GET``), per Airflow's auth manager."""
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _readable(dag_id: str, dag_ids: set[str]) -> None:
    if dag_id not in dag_ids:
        raise HTTPException(status_code=404, detail=NOT_FOUND)


def _map_index(value: str | None) -> int:
    """The ``map_index`` query parameter; Airflow leaves ``{MAP_INDEX}`` in tab URLs of unmapped tasks."""
    if value in (None, "", "{MAP_INDEX}", "undefined"):
        return -1
    try:
        return int(value)
    except ValueError:
        raise BadParameter(f"map_index {value!r} is not an integer (-1 for an unmapped task)") from None


class Links:
    """URLs for a request: Airflow UI routes (where the plugin's tabs live) and this app's endpoints,
    both under the api-server's base path."""

    def __init__(self, request: Request) -> None:
        root = request.scope.get("root_path", "").rstrip("/")
        self.app = root
        self.airflow = root[: -len(MOUNT)] if root.endswith(MOUNT) else root

    @staticmethod
    def _q(text: str) -> str:
        return quote(text, safe="")

    def dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{self._q(dag_id)}/plugin/carbon-dag"

    def run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{self._q(dag_id)}/runs/{self._q(run_id)}/plugin/carbon-run"

    def task(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        base = f"{self.airflow}/dags/{self._q(dag_id)}/runs/{self._q(run_id)}/tasks/{self._q(task_id)}"
        return f"{base}{'' if map_index < 0 else f'/mapped/{map_index}'}/plugin/carbon-task"

    def page(self, *parts: str, **query: Any) -> str:
        path = "/".join(self._q(p) for p in parts)
        qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v is not None)
        return f"{self.app}/{path}" + (f"?{qs}" if qs else "")

    def api(self, *parts: str, **query: Any) -> str:
        return self.page("api", *parts, **query)


_env = None


def _templates() -> Any:
    global _env
    if _env is None:
        from jinja2 import Environment, PackageLoader, select_autoescape

        _env = Environment(loader=PackageLoader("airflow_carbon.ui", "templates"), autoescape=select_autoescape(default=True))
        _env.filters.update(emissions=fmt.emissions, energy=fmt.energy, joules=fmt.joules, power=fmt.power, attribution=fmt.attribution,
                            duration=fmt.duration, intensity=fmt.intensity, task_label=task_label,
                            intensity_source=fmt.intensity_source, fallback_extent=fmt.fallback_extent, utc_time=fmt.utc_time,
                            avoided=fmt.avoided, waited=fmt.waited, known_of=fmt.known_of, budget_limits=fmt.budget_limits,
                            budget_status=fmt.budget_status)
    return _env


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(links=Links(request), request=request, **context)
    return HTMLResponse(html)


def _download(data: Any, download: str | None, name: str, csv_body: Callable[[], bytes]) -> Response:
    if download is None:
        return JSONResponse(data)
    if download not in DOWNLOADS:
        raise BadParameter(f"download {download!r} is not one of {', '.join(DOWNLOADS)}")
    if download == "csv":
        body, media = csv_body(), "text/csv; charset=utf-8"
    else:
        body, media = (json.dumps(data, indent=1) + "\n").encode(), "application/json"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:150]
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}.{download}"'})


def _rows_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue().encode()


# -- routes ----------------------------------------------------------------------------------------
router = APIRouter()
Readable = Depends(readable_dag_ids)
Period = Query("30d", description="7d, 30d, 90d or all")


@router.get("/api/overview")
def overview_json(session: SessionDep, dag_ids: set[str] = Readable, period: str = Period, sort: str = "emissions_g",
                  order: str = "desc", download: str | None = None) -> Response:
    """Every readable DAG with tracked tasks: emissions (g CO2e) and energy (kWh) over the period; per day."""
    data = views.overview(session, dag_ids, period, sort, order)
    return _download(data, download, f"carbon-emissions-{period}", lambda: _rows_csv(views.dags_csv_rows(data)))


@router.get("/api/dags/{dag_id}")
def dag_json(dag_id: str, session: SessionDep, dag_ids: set[str] = Readable, period: str = Period,
             limit: int = views.RUN_LIMIT, download: str | None = None) -> Response:
    """One DAG's tracked runs: emissions (g CO2e), energy (kWh) by component, state, hardware."""
    _readable(dag_id, dag_ids)
    data = views.dag(session, dag_id, period, limit)
    return _download(data, download, f"{dag_id}-{period}", lambda: _rows_csv(views.runs_csv_rows(data)))


def _found(data: dict[str, Any] | None) -> dict[str, Any]:
    if data is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return data


def _run(session: Any, dag_id: str, run_id: str, dag_ids: set[str]) -> dict[str, Any]:
    _readable(dag_id, dag_ids)
    return _found(views.run(session, dag_id, run_id))


@router.get("/api/dags/{dag_id}/runs/{run_id}")
def run_json(dag_id: str, run_id: str, session: SessionDep, dag_ids: set[str] = Readable, download: str | None = None) -> Response:
    """One run: totals, every task instance and try (g CO2e, kWh, method), intensities, model cards."""
    data = _run(session, dag_id, run_id, dag_ids)
    return _download(data, download, f"{dag_id}-{run_id}", lambda: records_csv(views.ordered_run_records(session, dag_id, run_id)))


def _task(session: Any, dag_id: str, run_id: str, task_id: str, map_index: str | None, dag_ids: set[str]) -> dict[str, Any]:
    _readable(dag_id, dag_ids)
    return _found(views.task_instance(session, dag_id, run_id, task_id, _map_index(map_index)))


@router.get("/api/dags/{dag_id}/runs/{run_id}/tasks/{task_id}")
def task_json(dag_id: str, run_id: str, task_id: str, session: SessionDep, dag_ids: set[str] = Readable,
              map_index: str | None = None, download: str | None = None) -> Response:
    """One task instance: every try's full record."""
    data = _task(session, dag_id, run_id, task_id, map_index, dag_ids)
    return _download(data, download, f"{dag_id}-{run_id}-{task_id}-{data['map_index']}", lambda: records_csv(data["records"]))


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, session: SessionDep, dag_ids: set[str] = Readable, period: str = Period,
                  sort: str = "emissions_g", order: str = "desc") -> HTMLResponse:
    data = views.overview(session, dag_ids, period, sort, order)
    links = Links(request)
    days = data["days"]
    tooltips = [f"{d['date']}: {fmt.emissions(d['emissions_g'])}, {fmt.energy(d['energy_kwh'])}" for d in days]
    chart = charts.bar_chart([(d["date"][5:], d["emissions_g"]) for d in days], fmt.emissions,
                             title="Emissions per day (UTC)", tooltips=tooltips)
    return _page(request, "overview.html", data=data, chart=chart,
                 period_links=[(p, links.page("", period=p, sort=sort, order=order)) for p in views.PERIODS],
                 json_url=links.api("overview", period=period), csv_url=links.api("overview", period=period, download="csv"))


@router.get("/dags/{dag_id}", response_class=HTMLResponse)
def dag_page(request: Request, dag_id: str, session: SessionDep, dag_ids: set[str] = Readable, period: str = Period,
             limit: int = views.RUN_LIMIT) -> HTMLResponse:
    _readable(dag_id, dag_ids)
    data = views.dag(session, dag_id, period, limit)
    links = Links(request)
    runs = list(reversed(data["runs"]))  # oldest first on the chart
    chart = charts.bar_chart(
        [((r["run_after"] or "")[5:10], r["emissions_g"]) for r in runs], fmt.emissions, title=f"Emissions per run of {dag_id}",
        links=[links.run(dag_id, r["run_id"]) for r in runs],
        tooltips=[f"{r['run_id']}: {fmt.emissions(r['emissions_g'])}, {fmt.energy(r['energy_kwh'])}" for r in runs],
    )
    return _page(request, "dag.html", data=data, chart=chart,
                 period_links=[(p, links.page("dags", dag_id, period=p)) for p in views.PERIODS],
                 json_url=links.api("dags", dag_id, period=period), csv_url=links.api("dags", dag_id, period=period, download="csv"))


@router.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, dag_id: str, run_id: str, session: SessionDep, dag_ids: set[str] = Readable) -> HTMLResponse:
    data = _run(session, dag_id, run_id, dag_ids)
    links = Links(request)
    chart = charts.stacked_bars(
        [(task_label(ti), {k: ti[f"{k}_kwh"] for k in COMPONENTS}) for ti in data["task_instances"]],
        [(k, k.upper()) for k in COMPONENTS], fmt.energy, title=f"Energy per task instance of run {run_id}",
    )
    return _page(request, "run.html", data=data, chart=chart, intensity_chart=intensity_chart(data),
                 json_url=links.api("dags", dag_id, "runs", run_id),
                 csv_url=links.api("dags", dag_id, "runs", run_id, download="csv"),
                 json_download=links.api("dags", dag_id, "runs", run_id, download="json"))


ESTIMATED = "estimated: a forecast, or the bundled figure where the live source failed"
"""What a dashed step of the run's intensity chart is."""


def intensity_chart(data: dict[str, Any]) -> str:
    """The run's g CO2e/kWh over time: a step per segment of every try (:func:`views.intensity_segments`),
    the estimated ones dashed; empty when no try has segments."""
    steps = []
    for s in data["intensity_segments"]:
        start, end = charts.instant_s(s["start"]), charts.instant_s(s["end"])
        if start is None or end is None or s["g_per_kwh"] is None:
            continue
        name = f"{task_label(s)} try {s['try_number']}"
        tip = (f"{name}: {fmt.utc_time(s['start'])[11:]} to {fmt.utc_time(s['end'])[11:]} UTC, {fmt.intensity(s['g_per_kwh'])}, "
               f"{fmt.energy(s['energy_kwh'])}, {s['source']}{' (estimated)' if s['estimated'] else ''}")
        steps.append(charts.Step(start, end, s["g_per_kwh"], name, bool(s["estimated"]), tip))
    return charts.step_chart(steps, fmt.intensity, title=f"Grid intensity over time of run {data['run_id']}", dashed_label=ESTIMATED)


@router.get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, dag_id: str, run_id: str, task_id: str, session: SessionDep, dag_ids: set[str] = Readable,
              map_index: str | None = None) -> HTMLResponse:
    data = _task(session, dag_id, run_id, task_id, map_index, dag_ids)
    links = Links(request)
    mi = data["map_index"]
    query = {"map_index": mi if mi >= 0 else None}
    return _page(request, "task.html", data=data, json_url=links.api("dags", dag_id, "runs", run_id, "tasks", task_id, **query),
                 csv_url=links.api("dags", dag_id, "runs", run_id, "tasks", task_id, download="csv", **query),
                 json_download=links.api("dags", dag_id, "runs", run_id, "tasks", task_id, download="json", **query))


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(f"{request.scope.get('root_path', '').rstrip('/')}/api/")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if not _wants_html(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))
    login = None
    if exc.status_code in (401, 403):
        try:
            login = get_auth_manager().get_url_login()
        except Exception:  # broad on purpose: the page still says what is wrong
            login = None
    html = _templates().get_template("error.html").render(links=Links(request), status=exc.status_code, detail=exc.detail, login=login)
    return HTMLResponse(html, status_code=exc.status_code)


async def _bad_parameter(request: Request, exc: BadParameter) -> Response:
    return await _http_error(request, HTTPException(status_code=400, detail=str(exc)))


def create_app() -> FastAPI:
    """The app the api-server mounts at ``/carbon`` (built on first request, see the plugin)."""
    app = FastAPI(title="airflow-carbon", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BadParameter, _bad_parameter)
    return app
