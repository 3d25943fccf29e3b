"""The carbon UI as a person sees it: Chromium (Playwright) inside Airflow's own React UI, served by the
real ``airflow api-server`` of the ``ui`` fixture (carbon_testing.ui_server). A user signs in on Airflow's
login page, opens "Carbon emissions" from the Browse menu and follows the pages' own links into the DAG,
run and task instance tabs; every figure shown is checked against the records the dag.test() runs left
in the metadata DB. The run's CSV is downloaded through the Airflow page; a user limited to one DAG and
an anonymous visitor see nothing of the others.

Each view is captured in Airflow's light and dark themes (into the test's tmp_path);
``CARBON_UPDATE_SCREENSHOTS=1`` copies the captures to docs/screenshots/, the README's pictures.
The same views over plain HTTP: test_ui.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, BrowserContext, FrameLocator, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from carbon_testing.ui_server import PASSWORDS
from conftest import HOSTILE
from test_ui import (
    AWARE_DAG,
    FALLBACKS,
    HOSTILE_REASON,
    LIVE_DAG,
    LIVE_SOURCES,
    PUSHED_DAG,
    acting_expected,
    run_aware_pushed_dag,
    run_live_dag,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CARBON_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium (make setup installs it): Playwright cannot download its own browser here."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 850}
"""A laptop screen: the size of the README's screenshots."""
SCREENSHOTS = ROOT / "docs" / "screenshots"
NOT_FOUND = "no such DAG, run or task, or you may not read it"
CARD, MAPPED = "carbon_card_local", "carbon_mapped"

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (make setup installs Debian's)"),
]

expect.set_options(timeout=30_000)  # Airflow's UI builds the plugin tabs after fetching the plugin list


# -- the records: what the pages must show ---------------------------------------------------------
def _records(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.utils.session import create_session

    from airflow_carbon.xcom import run_records

    with create_session() as session:
        return run_records(dag_id, run_id, session)


def _every_run() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every run's valid records, by (dag_id, run_id): other tests of the session may have run these DAGs
    too (or pushed a forged record, which no page counts)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_carbon.core.record import validate_record
    from airflow_carbon.xcom import run_records

    def valid(record: dict[str, Any]) -> bool:
        try:
            validate_record(record)
            return True
        except Exception:  # broad on purpose: RecordError, anything the schema refuses
            return False

    with create_session() as session:
        runs = session.execute(select(DagRun.dag_id, DagRun.run_id)).all()
        found = {(d, r): [rec for rec in run_records(d, r, session) if valid(rec)] for d, r in runs}
    return {key: records for key, records in found.items() if records}


def _grams(records: list[dict[str, Any]]) -> float:
    return sum(r["emissions_g"] for r in records)


def _kwh(records: list[dict[str, Any]]) -> float:
    return sum(r["energy_kwh"] for r in records)


def _try_name(record: dict[str, Any]) -> str:
    t = record["task"]
    index = "" if t["map_index"] < 0 else f"[{t['map_index']}]"
    return f"{t['task_id']}{index} try {t['try_number']}"


# -- what the pages show -----------------------------------------------------------------------------
_GRAMS = {"t": 1e6, "kg": 1e3, "g": 1.0, "mg": 1e-3}
_KWH = {"MWh": 1e3, "kWh": 1.0, "Wh": 1e-3, "J": 1 / 3.6e6}
_NUMBER = r"(-?[0-9.]+(?:e[+-]?[0-9]+)?)"
SHOWN_REL_TOL = 0.0051
"""Figures are shown with three significant digits: at most half a unit of the third digit off."""


def _shown(text: str, units: dict[str, float], suffix: str) -> float:
    match = re.match(rf"\s*{_NUMBER} ({'|'.join(units)}){suffix}", text)
    assert match, f"the page shows {text!r} where an amount in {', '.join(units)} was expected"
    return float(match[1]) * units[match[2]]


def _check_figure(element: Locator, expected: float, what: str, attr: str, unit: str, units: dict[str, float], suffix: str) -> None:
    """``element``'s exact figure (attribute ``attr``, in ``unit``) and its text both equal ``expected``."""
    expect(element, f"{what}: not on the page").to_be_visible()
    exact = float(element.get_attribute(attr))
    assert math.isclose(exact, expected, rel_tol=1e-9), f"{what}: the page says {exact!r} {unit}, the records sum to {expected!r} {unit}"
    text = element.inner_text()
    shown = _shown(text, units, suffix)
    assert math.isclose(shown, expected, rel_tol=SHOWN_REL_TOL), f"{what}: the page shows {text!r}, the records sum to {expected!r} {unit}"


def _check_grams(element: Locator, expected_g: float, what: str) -> None:
    """``element``'s figure equals ``expected_g`` grams CO2e (data-g and the text shown)."""
    _check_figure(element, expected_g, what, "data-g", "g CO2e", _GRAMS, r" CO2e")


def _check_kwh(element: Locator, expected_kwh: float, what: str) -> None:
    """``element``'s figure equals ``expected_kwh`` kWh (data-kwh and the text shown)."""
    _check_figure(element, expected_kwh, what, "data-kwh", "kWh", _KWH, r"\b")


def _check_avoided(element: Locator, expected_g: float, what: str) -> None:
    """``element``'s figure equals ``expected_g`` grams avoided (data-avoided-g and the text shown, with its sign)."""
    _check_figure(element, expected_g, what, "data-avoided-g", "g CO2e", _GRAMS, r" CO2e")


def _check_theme(frame: FrameLocator, theme: str, where: str) -> None:
    """The carbon page follows Airflow's theme (not the OS's, which the contexts set to the other one)."""
    expect(frame.locator("html"), f"{where}: the carbon page did not take Airflow's {theme} theme").to_have_attribute("data-theme", theme)
    # the page is transparent over Airflow's own background: its text and controls must suit that theme
    style = frame.locator("body").evaluate("b => [getComputedStyle(b).color, getComputedStyle(document.documentElement).colorScheme]")
    channels = [int(c) for c in re.findall(r"\d+", style[0])[:3]]
    looks = "dark" if sum(channels) / (3 * 255) > 0.5 else "light"  # light text is for a dark theme
    assert looks == theme, f"{where}: the carbon page's text is {style[0]} (made for a {looks} theme) inside Airflow's {theme} theme"
    assert style[1] == theme, f"{where}: the carbon page's color-scheme is {style[1]!r} inside Airflow's {theme} theme"


# -- the browser -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def _context(browser: Browser, theme: str | None = None) -> Iterator[BrowserContext]:
    """A fresh browser profile at laptop size. With ``theme``, Airflow's own setting (next-themes'
    localStorage key ``theme``, top window only) is that theme and the OS prefers the other one."""
    options: dict[str, Any] = {"viewport": VIEWPORT, "accept_downloads": True}
    if theme is not None:
        options["color_scheme"] = "light" if theme == "dark" else "dark"
    context = browser.new_context(**options)
    context.set_default_timeout(30_000)
    if theme is not None:
        context.add_init_script(f"if (window.top === window) localStorage.setItem('theme', {json.dumps(theme)});")
    try:
        yield context
    finally:
        context.close()


def _log_in(context: BrowserContext, url: str, user: str) -> Page:
    """Sign in on Airflow's login page (SimpleAuthManager's form), as a person does."""
    page = context.new_page()
    page.goto(f"{url}/auth/login/")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    try:
        page.wait_for_url(lambda u: "/auth/login" not in u)
    except PlaywrightTimeout:
        raise AssertionError(f"signing in as {user} on {url}/auth/login/ did not leave the login page") from None
    assert any(c["name"] == "_token" for c in context.cookies()), f"signing in as {user} left no Airflow session (_token cookie)"
    return page


def _tab(page: Page, destination: str, **ids: Any) -> FrameLocator:
    """The iframe Airflow shows for the plugin's external view of ``destination``, the ids filled in as
    Airflow's UI fills them ({DAG_ID}, {RUN_ID}, {TASK_ID}, {MAP_INDEX})."""
    from airflow_carbon.plugins.carbon import EXTERNAL_VIEWS

    href = next(v["href"] for v in EXTERNAL_VIEWS if v["destination"] == destination)
    for key, value in ids.items():
        href = href.replace("{" + key.upper() + "}", quote(str(value), safe=""))
    return page.frame_locator(f'iframe[src="{href}"]')


def _nav(page: Page) -> FrameLocator:
    return page.frame_locator('iframe[title="Carbon emissions"]')


def _tab_url(dag_id: str, run_id: str | None = None, task: str | None = None, map_index: int = -1) -> str:
    """The Airflow route of the plugin's DAG / run / task instance tab."""
    path = f"/dags/{quote(dag_id, safe='')}"
    if run_id is None:
        return f"{path}/plugin/carbon-dag"
    path += f"/runs/{quote(run_id, safe='')}"
    if task is None:
        return f"{path}/plugin/carbon-run"
    return f"{path}/tasks/{quote(task, safe='')}{'' if map_index < 0 else f'/mapped/{map_index}'}/plugin/carbon-task"


def _at(route: str) -> re.Pattern[str]:
    return re.compile(re.escape(route) + r"$")


class _Screenshots:
    """Viewport captures into ``folder``; :meth:`publish` copies them to docs/screenshots/ when
    CARBON_UPDATE_SCREENSHOTS=1 (only reached when every check before it passed)."""

    def __init__(self, page: Page, theme: str, folder: Path) -> None:
        self.page, self.theme, self.folder, self.taken = page, theme, folder, []

    def take(self, view: str) -> None:
        self.page.mouse.move(VIEWPORT["width"] - 4, VIEWPORT["height"] - 4)  # no hover effect on a link or bar
        with contextlib.suppress(PlaywrightTimeout):  # a page that polls: capture it as it is
            self.page.wait_for_load_state("networkidle", timeout=10_000)  # Airflow's own panels filled in
        path = self.folder / f"{view}-{self.theme}.png"
        self.page.screenshot(path=path)
        self.taken.append(path)

    def publish(self) -> None:
        if os.environ.get("CARBON_UPDATE_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for path in self.taken:
            shutil.copyfile(path, SCREENSHOTS / path.name)


# -- the tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_from_the_browse_menu_to_a_failed_try_every_figure_equals_the_records(ui, browser, theme, tmp_path):
    url, run_id = ui.server.url, ui.card_run
    everything = _every_run()
    card = _records(CARD, run_id)
    with _context(browser, theme) as context:
        page = _log_in(context, url, "admin")
        shots = _Screenshots(page, theme, tmp_path)

        # The overview: Browse > Carbon emissions, all time
        page.get_by_role("button", name="Browse").click()
        entry = page.get_by_role("menuitem", name="Carbon emissions")
        expect(entry, "Airflow's Browse menu has no 'Carbon emissions' entry").to_be_visible()
        entry.click()
        expect(page, "the Browse menu's 'Carbon emissions' did not open the plugin's page").to_have_url(re.compile(r"/plugin/carbon(/.*)?$"))
        frame = _nav(page)
        frame.locator("a.pill", has_text="all time").click()
        expect(frame.locator("a.pill.on"), "the overview did not switch to all time").to_have_text("all time")
        expect(page, "Airflow's address does not follow the overview's period (no deep link)").to_have_url(re.compile(r"/plugin/carbon/carbon/\?period=all"))
        _check_theme(frame, theme, "overview")
        _check_grams(frame.locator("#total-emissions"), sum(_grams(r) for r in everything.values()), "the overview's total emissions")
        _check_kwh(frame.locator("#total-energy"), sum(_kwh(r) for r in everything.values()), "the overview's total energy")
        for dag_id in (CARD, MAPPED):
            row = frame.locator(f'#dags tr[data-dag-id="{dag_id}"]')
            expect(row, f"the overview does not list {dag_id}").to_be_visible()
            runs = [records for (d, _r), records in everything.items() if d == dag_id]
            _check_grams(row.locator("td[data-g]"), sum(_grams(r) for r in runs), f"{dag_id}'s emissions on the overview")
            _check_kwh(row.locator("td[data-kwh]"), sum(_kwh(r) for r in runs), f"{dag_id}'s energy on the overview")
        shots.take("overview")

        # The DAG's Carbon tab, by its link on the overview
        frame.locator(f'#dags tr[data-dag-id="{CARD}"] a').click()
        expect(page, f"clicking {CARD} on the overview did not open the DAG's Carbon tab in Airflow").to_have_url(_at(_tab_url(CARD)))
        frame = _tab(page, "dag", dag_id=CARD)
        _check_theme(frame, theme, "DAG tab")
        runs = {r: records for (d, r), records in everything.items() if d == CARD}
        _check_grams(frame.locator("#total-emissions"), sum(_grams(r) for r in runs.values()), f"{CARD}'s total on its Carbon tab")
        row = frame.locator(f'#runs tr[data-run-id="{run_id}"]')
        expect(row, f"{CARD}'s Carbon tab does not list run {run_id}").to_be_visible()
        _check_grams(row.locator("td[data-g]"), _grams(card), f"run {run_id} on the DAG tab")
        _check_kwh(row.locator("td[data-kwh]"), _kwh(card), f"run {run_id} on the DAG tab")
        expect(row.locator(".status"), "the run's state on the DAG tab").to_have_text("success")
        expect(frame.locator("svg.chart .bar").first, "the DAG tab's chart of emissions per run is empty").to_be_visible()
        shots.take("dag")

        # The run's Carbon tab, by its link on the DAG tab
        row.get_by_role("link", name=run_id).click()
        expect(page, "clicking the run on the DAG tab did not open the run's Carbon tab in Airflow").to_have_url(_at(_tab_url(CARD, run_id)))
        frame = _tab(page, "dag_run", dag_id=CARD, run_id=run_id)
        _check_theme(frame, theme, "run tab")
        _check_grams(frame.locator("#total-emissions"), _grams(card), "the run tab's total emissions")
        _check_kwh(frame.locator("#total-energy"), _kwh(card), "the run tab's total energy")
        expect(frame.locator("#tries tbody tr"), "the run tab does not have one row per task try").to_have_count(len(card))
        for record in card:
            t = record["task"]
            row = frame.locator(f'#tries tr[data-task-id="{t["task_id"]}"][data-map-index="{t["map_index"]}"][data-try="{t["try_number"]}"]')
            name = f"{_try_name(record)} on the run tab"
            expect(row.locator(".status"), f"{name}: status").to_have_text(record["status"])
            _check_grams(row.locator("td[data-g]"), record["emissions_g"], name)
            _check_kwh(row.locator("td[data-kwh]"), record["energy_kwh"], name)
            expect(row.locator("td").nth(5), f"{name}: how the GPU energy was obtained").to_contain_text("[counter]")
        failed = frame.locator("#tries tr.failed")
        expect(failed, "the run tab does not mark exactly one try as failed").to_have_count(1)
        expect(failed.get_by_role("link"), "the failed try on the run tab is not train[0]").to_have_text("train[0]")
        expect(failed.locator("td").nth(1), "the failed try on the run tab is not the first try").to_have_text("1")
        expect(frame.locator("svg.chart .seg-gpu").first, "the run tab's energy chart has no GPU segment").to_be_visible()
        expect(frame.locator("#model-card-1"), "the run tab does not show what the publish task wrote to the model card").to_contain_text("publish")
        shots.take("run")

        # train[0]'s Carbon tab, by its link on the run tab
        failed.get_by_role("link").click()
        expect(page, "clicking train[0] on the run tab did not open its Carbon tab in Airflow").to_have_url(_at(_tab_url(CARD, run_id, "train", 0)))
        frame = _tab(page, "task_instance", dag_id=CARD, run_id=run_id, task_id="train", map_index=0)
        _check_theme(frame, theme, "task instance tab")
        tries = sorted((r for r in card if (r["task"]["task_id"], r["task"]["map_index"]) == ("train", 0)), key=lambda r: r["task"]["try_number"])
        assert [(r["task"]["try_number"], r["status"]) for r in tries] == [(1, "failed"), (2, "success")], "the fixture's train[0] should fail once, then succeed"
        expect(frame.locator("h1"), "the task instance tab's title").to_have_text("train[0]")
        _check_grams(frame.locator("#total-emissions"), _grams(tries), "train[0]'s total on its Carbon tab")
        _check_kwh(frame.locator("#total-energy"), _kwh(tries), "train[0]'s total energy on its Carbon tab")
        for record in tries:
            n, box = record["task"]["try_number"], frame.locator(f"#try-{record['task']['try_number']}")
            expect(box.locator("h2"), f"try {n} of train[0]: heading").to_have_text(f"Try {n}: {record['status']}")
            _check_grams(box.locator("dd[data-g]"), record["emissions_g"], f"try {n} of train[0]")
            _check_kwh(box.locator("dd[data-kwh]"), record["energy_kwh"], f"try {n} of train[0]")
            expect(box.locator("table.gpus tbody tr td").nth(2), f"try {n} of train[0]: how the GPU energy was obtained").to_have_text("counter")
        gpus = frame.locator("table.gpus")
        expect(gpus.first, "the GPU's name (a driver string) is not shown as the text it is").to_contain_text(HOSTILE)
        expect(frame.locator("table.gpus script"), "the GPU's name became markup on the task instance tab").to_have_count(0)
        shots.take("task")

        # and back to the overview by the breadcrumbs
        frame.locator(".crumbs a", has_text="Carbon emissions").click()
        expect(page, "the task tab's 'Carbon emissions' breadcrumb did not lead back to the overview").to_have_url(re.compile(r"/plugin/carbon(/carbon/)?$"))
        expect(_nav(page).locator("#total-emissions"), "the overview did not load after the breadcrumb").to_be_visible()
    shots.publish()


def test_the_carbon_page_follows_a_theme_switch_in_airflow_without_reloading(ui, browser):
    with _context(browser, "light") as context:
        page = _log_in(context, ui.server.url, "admin")
        page.goto(f"{ui.server.url}/plugin/carbon")
        frame = _nav(page)
        _check_theme(frame, "light", "overview")
        frame.locator("body").evaluate("() => { window.sameDocument = true; }")
        page.get_by_role("button", name="User").click()
        page.get_by_role("menuitem", name="Appearance").hover()
        page.get_by_role("menuitemradio", name="Dark Mode").click()
        expect(page.locator("html"), "Airflow's Appearance > Dark Mode did not switch Airflow to dark").to_have_class(re.compile(r"\bdark\b"))
        _check_theme(frame, "dark", "overview after switching Airflow to Dark Mode")
        assert frame.locator("body").evaluate("() => window.sameDocument === true"), "the carbon page reloaded to change theme"


def test_the_run_tab_downloads_its_csv_and_json_through_the_airflow_page(ui, browser):
    from airflow_carbon.core.export import CODECARBON_COLUMNS

    url, run_id = ui.server.url, ui.card_run
    card = _records(CARD, run_id)
    with _context(browser) as context:
        page = _log_in(context, url, "admin")
        page.goto(url + _tab_url(CARD, run_id))
        frame = _tab(page, "dag_run", dag_id=CARD, run_id=run_id)
        link = frame.locator("a.csv-download")
        expect(link, "the run tab has no 'Download CSV' link").to_be_visible()
        with page.expect_download() as started:
            link.click()
        download = started.value
        assert download.failure() is None, f"the CSV download failed: {download.failure()}"
        assert download.suggested_filename.endswith(".csv"), f"the CSV download is named {download.suggested_filename!r}"
        text = Path(download.path()).read_text(encoding="utf-8")
        header, *_ = csv.reader(io.StringIO(text))
        assert header == CODECARBON_COLUMNS, f"the CSV's columns are not CodeCarbon's: {header}"
        rows = {row["experiment_id"]: row for row in csv.DictReader(io.StringIO(text))}
        expected = {f"{r['task']['task_id']}[{r['task']['map_index']}]#{r['task']['try_number']}": r for r in card}
        assert len(text.strip().splitlines()) == len(card) + 1 and set(rows) == set(expected), \
            f"the CSV has rows {sorted(rows)}, the run has tries {sorted(expected)}"
        for key, record in expected.items():
            row = rows[key]
            assert (row["project_name"], row["run_id"]) == (CARD, run_id), f"CSV row {key} names {row['project_name']} / {row['run_id']}"
            assert math.isclose(float(row["emissions"]), record["emissions_g"] / 1000, rel_tol=1e-9), \
                f"CSV row {key}: emissions {row['emissions']} kg, the record says {record['emissions_g']} g"
            assert math.isclose(float(row["energy_consumed"]), record["energy_kwh"], rel_tol=1e-9), \
                f"CSV row {key}: energy_consumed {row['energy_consumed']} kWh, the record says {record['energy_kwh']} kWh"
        with page.expect_download() as started:
            frame.locator("a.json-download").click()
        data = json.loads(Path(started.value.path()).read_text(encoding="utf-8"))
        assert data["run_id"] == run_id and math.isclose(data["totals"]["emissions_g"], _grams(card), rel_tol=1e-9), \
            "the JSON download is not this run's, or its total differs from the records"
        expect(page, "downloading moved Airflow away from the run's Carbon tab").to_have_url(url + _tab_url(CARD, run_id))
        expect(frame.locator("#tries"), "the run tab is gone after downloading").to_be_visible()


def test_a_user_limited_to_one_dag_sees_nothing_of_the_others(ui, browser):
    url = ui.server.url
    mapped = [records for (d, _r), records in _every_run().items() if d == MAPPED]
    with _context(browser) as context:
        page = _log_in(context, url, "alice")
        page.goto(f"{url}/plugin/carbon")
        frame = _nav(page)
        _check_grams(frame.locator("#total-emissions"), sum(_grams(r) for r in mapped), f"alice's overview total ({MAPPED} only)")
        listed = frame.locator("#dags tbody tr").evaluate_all("rows => rows.map(r => r.dataset.dagId)")
        assert listed == [MAPPED], f"alice, who may read {MAPPED} only, sees the DAGs {listed}"
        html = frame.locator("html").evaluate("e => e.outerHTML")
        assert CARD not in html, f"alice's overview mentions {CARD}, a DAG she may not read"

        page.goto(url + _tab_url(CARD, ui.card_run))
        frame = _tab(page, "dag_run", dag_id=CARD, run_id=ui.card_run)
        body = frame.locator("body")
        expect(body, f"alice's Carbon tab of a {CARD} run does not say 'not found'").to_contain_text(f"404: {NOT_FOUND}")
        expect(frame.locator("[data-g], [data-kwh]"), f"alice's Carbon tab of a {CARD} run shows figures").to_have_count(0)
        text = body.inner_text()
        assert "CO2e" not in text and ui.card_run not in text and "train" not in text, f"alice sees this of a {CARD} run: {text!r}"


def test_an_anonymous_visitor_gets_a_way_to_log_in_and_no_figures(ui, browser):
    with _context(browser) as context:
        page = context.new_page()
        response = page.goto(f"{ui.server.url}/carbon/")
        assert response is not None and response.status == 401, f"/carbon/ answered {response and response.status} to a visitor who is not logged in"
        expect(page.locator("[data-g], [data-kwh]"), "a visitor who is not logged in sees figures").to_have_count(0)
        login = page.get_by_role("link", name="Log in to Airflow")
        expect(login, "the 401 page has no 'Log in to Airflow' link").to_be_visible()
        login.click()
        expect(page.locator("input[name=username]"), "'Log in to Airflow' does not lead to Airflow's login form").to_be_visible()


@pytest.fixture(scope="module")
def live_run(ui, airflow_dags):
    """A run of carbon_ui_live: tries at live sources' intensities, some fallen back (test_ui.run_live_dag)."""
    return run_live_dag(airflow_dags)


def test_the_run_tab_charts_the_live_grid_intensity_and_marks_the_fallbacks(ui, browser, live_run, tmp_path):
    url, run_id = ui.server.url, live_run.run_id
    segments = [s for rs in live_run.tries.values() for r in rs for s in r["intensity"].get("segments") or []]
    with _context(browser, "light") as context:
        page = _log_in(context, url, "admin")
        shots = _Screenshots(page, "light", tmp_path)
        page.goto(url + _tab_url(LIVE_DAG, run_id))
        frame = _tab(page, "dag_run", dag_id=LIVE_DAG, run_id=run_id)
        for (task_id, n), text in LIVE_SOURCES.items():
            row = frame.locator(f'#tries tr[data-task-id="{task_id}"][data-try="{n}"]')
            expect(row.locator(".intensity-source"), f"{task_id} try {n}: where its intensity came from").to_have_text(text)
        for (task_id, n), reason in FALLBACKS.items():
            badge = frame.locator(f'#tries tr[data-task-id="{task_id}"][data-try="{n}"] .badge.fallback')
            expect(badge, f"{task_id} try {n} fell back: no badge says so").to_be_visible()
            expect(badge, f"{task_id} try {n}: the badge does not give the reason").to_have_attribute("title", reason)
        expect(frame.locator("#tries .badge.fallback"), "a try that did not fall back has a fallback badge").to_have_count(len(FALLBACKS))
        steps = frame.locator("#intensity-chart svg line.step:not(.legend)")
        expect(steps, "the intensity chart does not draw one step per segment").to_have_count(len(segments))
        dashes = steps.evaluate_all("ls => ls.map(l => getComputedStyle(l).strokeDasharray)")
        assert sum(d not in ("none", "") for d in dashes) == sum(s["estimated"] for s in segments), \
            f"the estimated segments are not the dashed ones: {dashes}"
        box = frame.locator("#intensity-chart svg").bounding_box()
        assert box is not None and box["width"] > 500, f"the intensity chart is not drawn at a readable size: {box}"
        shots.take("run-live")

        page.goto(url + _tab_url(LIVE_DAG, run_id, "train_gb"))
        frame = _tab(page, "task_instance", dag_id=LIVE_DAG, run_id=run_id, task_id="train_gb")
        expect(frame.locator("#try-1 .fallback-reason"), "the task tab does not say why the try fell back").to_contain_text(FALLBACKS[("train_gb", 1)])
        expect(frame.locator("#try-1 table.segments tbody tr"), "the task tab does not list the try's segments").to_have_count(3)
        shots.take("task-live")
    shots.publish()


@pytest.fixture(scope="module")
def aware_pushed(ui, airflow_dags):
    """A run of carbon_ui_aware_pushed: a wait that cost more, unknown figures, a budget that stopped a try
    (test_ui.run_aware_pushed_dag)."""
    return run_aware_pushed_dag(airflow_dags)


def test_the_grams_avoided_by_waiting_each_wait_and_the_budgets_as_a_person_sees_them(ui, browser, aware_pushed, tmp_path):
    from airflow_carbon.ui import format as fmt

    url = ui.server.url
    everything = _every_run()
    every_record = [r for records in everything.values() for r in records]
    estate = acting_expected(every_record)
    assert estate["avoided_known_task_instances"] < estate["carbon_aware_task_instances"], "the pushed run should have an unknown figure"
    (record,) = _records(AWARE_DAG, ui.aware_run)
    shift = record["shift"]
    with _context(browser, "light") as context:
        page = _log_in(context, url, "admin")
        shots = _Screenshots(page, "light", tmp_path)

        # the overview: the grams every carbon-aware start avoided, and how many task instances have a figure
        page.goto(f"{url}/plugin/carbon")
        frame = _nav(page)
        frame.locator("a.pill", has_text="all time").click()
        expect(frame.locator("a.pill.on"), "the overview did not switch to all time").to_have_text("all time")
        _check_avoided(frame.locator("#total-avoided"), estate["avoided_g"], "the overview's grams avoided")
        expect(frame.locator("#avoided-card .avoided-known"), "the overview does not say how many figures are known").to_have_text(
            fmt.known_of(estate["avoided_known_task_instances"], estate["carbon_aware_task_instances"], "task instance"))
        aware_dag = acting_expected([r for (d, _r), rs in everything.items() if d == AWARE_DAG for r in rs])
        _check_avoided(frame.locator(f'#dags tr[data-dag-id="{AWARE_DAG}"] [data-avoided-g]'), aware_dag["avoided_g"],
                       f"{AWARE_DAG}'s grams avoided on the overview")
        shots.take("overview-aware")

        # the DAG tab: its total, and the run whose task went over its budget
        page.goto(url + _tab_url(AWARE_DAG))
        frame = _tab(page, "dag", dag_id=AWARE_DAG)
        _check_avoided(frame.locator("#total-avoided"), aware_dag["avoided_g"], f"{AWARE_DAG}'s grams avoided on its Carbon tab")
        row = frame.locator(f'#runs tr[data-run-id="{ui.aware_run}"]')
        _check_avoided(row.locator("[data-avoided-g]"), shift["avoided_g"], f"run {ui.aware_run} on the DAG tab")
        expect(row.locator(".badge.budget"), "the run whose task exceeded its budget has no badge on the DAG tab").to_have_text("budget exceeded")

        # the run tab: the try's wait, why, and its budget badge
        row.get_by_role("link", name=ui.aware_run).click()
        expect(page, "clicking the run on the DAG tab did not open the run's Carbon tab").to_have_url(_at(_tab_url(AWARE_DAG, ui.aware_run)))
        frame = _tab(page, "dag_run", dag_id=AWARE_DAG, run_id=ui.aware_run)
        _check_avoided(frame.locator("#total-avoided"), shift["avoided_g"], "the run tab's grams avoided")
        row = frame.locator('#tries tr[data-task-id="train"][data-try="1"]')
        expect(row.locator(".shift .waited"), "the try row does not say how long it waited").to_have_text(f"waited {fmt.duration(shift['waited_s'])}")
        expect(row.locator(".shift-reason"), "the try row does not say why it waited").to_have_text(shift["reason"])
        _check_avoided(row.locator("[data-avoided-g]"), shift["avoided_g"], "the try's grams avoided on the run tab")
        badge = row.locator(".badge.budget")
        expect(badge, "the try that exceeded its budget has no badge on the run tab").to_have_text("budget exceeded: warned")
        frame.locator("#tries").scroll_into_view_if_needed()
        shots.take("run-aware")

        # the task tab: planned against actual start, the forecast, the grams avoided, the budget
        row.get_by_role("link", name="train").click()
        expect(page, "clicking train on the run tab did not open its Carbon tab").to_have_url(_at(_tab_url(AWARE_DAG, ui.aware_run, "train")))
        frame = _tab(page, "task_instance", dag_id=AWARE_DAG, run_id=ui.aware_run, task_id="train")
        box = frame.locator("#try-1")
        expect(box.locator(".shift .waited"), "the task tab does not say how long the try waited").to_have_text(f"waited {fmt.duration(shift['waited_s'])}")
        expect(box.locator(".shift-reason"), "the task tab does not say why the try waited").to_have_text(shift["reason"])
        expect(box.locator(".shift-start"), "the task tab does not give the planned and the actual start").to_contain_text(
            f"planned {fmt.utc_time(shift['planned_start'])} · started {fmt.utc_time(shift['started_at'])}")
        expect(box.locator(".shift-forecast"), "the task tab does not give the forecast now and at the planned start").to_contain_text(
            f"{fmt.intensity(shift['forecast_g_per_kwh_now'])} starting when asked · {fmt.intensity(shift['forecast_g_per_kwh_planned'])} at the planned start")
        _check_avoided(box.locator(".shift-avoided [data-avoided-g]"), shift["avoided_g"], "the try's grams avoided on the task tab")
        expect(frame.locator("#budget-status"), "the task tab does not give the budget's status").to_have_text("exceeded: warned")
        expect(box.locator(".budget .badge.budget"), "the try's budget line has no badge").to_have_text("budget exceeded: warned")
        box.locator(".shift").scroll_into_view_if_needed()
        shots.take("task-aware")

        # a run whose wait cost more, with unknown figures and a budget that stopped a try
        run_id = aware_pushed.run_id
        page.goto(url + _tab_url(PUSHED_DAG, run_id))
        frame = _tab(page, "dag_run", dag_id=PUSHED_DAG, run_id=run_id)
        late = aware_pushed.tries["train_late"][0]["shift"]["avoided_g"]
        _check_avoided(frame.locator("#total-avoided"), late, "the pushed run's grams avoided (the unknown ones left out)")
        expect(frame.locator("#avoided-card .avoided-known"), "the run tab does not say how many tries have a figure").to_have_text(
            "2 of 4 tries with a known figure; unknown ones are not counted as 0")
        row = frame.locator('#tries tr[data-task-id="train_late"]')
        _check_avoided(row.locator("[data-avoided-g]"), late, "train_late's (negative) grams avoided")
        expect(row.locator(".avoided"), "a negative figure is not said to be a wait that cost more").to_contain_text("(the wait cost more)")
        expect(row.locator(".badge.budget"), "train_late's stop is not on the run tab").to_have_text("budget exceeded: stopped")
        unknown = frame.locator('#tries tr[data-task-id="train_unknown"]')
        expect(unknown.locator(".avoided"), "an unknown figure is not said to be unknown").to_have_text("unknown")
        expect(unknown.locator(".shift-reason"), "the reason (hostile markup) is not shown as the text it is").to_have_text(HOSTILE_REASON)
        expect(frame.locator("#tries script"), "a reason became markup on the run tab").to_have_count(0)
        frame.locator("#tries").scroll_into_view_if_needed()
        shots.take("run-aware-pushed")
    shots.publish()
