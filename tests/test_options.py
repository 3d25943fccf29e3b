"""One option table (airflow_carbon/core/options.py): everything that declares an option comes from it,
and every place that takes one applies the same bounds with the same message."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from airflow_carbon._version import __version__
from airflow_carbon.core.options import (
    OPTION,
    OPTIONS,
    PLACES,
    OptionError,
    default_text,
    doc_lines,
    markdown_table,
    options_in,
    parse_config,
    parse_text,
    validate,
    validate_many,
)

RELEASES = ("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0")
"""The releases so far, oldest first."""

ROOT = Path(__file__).resolve().parents[1]


# -- the table --------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_every_option_is_documented_with_its_unit_and_a_real_example(option):
    assert option.doc and "\n" not in option.doc and not option.doc.endswith(".")
    if option.unit:
        assert option.unit in option.doc, f"{option.name}: its doc does not name its unit {option.unit!r}"
    assert option.where and option.version_added in RELEASES and RELEASES.index(option.version_added) <= RELEASES.index(__version__)
    assert option.example is not None
    example = validate_many({option.name: parse_text(option, option.example)})[option.name]
    assert example is not None and example != option.default
    assert parse_text(option, default_text(option)) == option.default  # the default's text reads back as it
    if option.default is not None and option.type not in ("list",):
        assert validate(option, option.default) == option.default


@pytest.mark.unit
def test_the_names_are_unique_and_the_places_known():
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    assert set().union(*(o.where for o in OPTIONS)) == set(PLACES)
    assert all(o.cli[0].startswith("--") for o in options_in("cli"))


@pytest.mark.unit
def test_messages_name_the_option_the_value_and_what_is_accepted():
    with pytest.raises(OptionError) as err:
        validate("pue", 0.5)
    assert str(err.value) == "pue=0.5 is invalid; expected a number >= 1.0 (e.g. 1.1)"
    with pytest.raises(OptionError) as err:
        validate("sampling_interval_s", "fast")
    assert str(err.value) == "sampling_interval_s='fast' is invalid; expected a number from 0.001 to 60 s (e.g. 0.5)"
    with pytest.raises(ValueError) as err:
        parse_config({"pue": "0"})
    assert str(err.value) == "[carbon] pue = '0' is invalid; expected a number >= 1.0 (e.g. 1.1)"
    import pickle

    assert str(pickle.loads(pickle.dumps(err.value))) == str(err.value)  # it may cross a process boundary
    with pytest.raises(ValueError) as err:
        parse_config({"location": "Frnace"})
    assert str(err.value).startswith("[carbon] location = 'Frnace' is invalid: Unknown grid location 'Frnace'. Did you mean: France (FR)?")
    with pytest.raises(ValueError, match=r"^\[carbon\] auto_track = 'maybe' is invalid; expected True or False"):
        parse_config({"auto_track": "maybe"})


@pytest.mark.unit
def test_a_location_is_known_or_named_beside_an_explicit_intensity():
    from airflow_carbon import UnknownLocationError

    with pytest.raises(UnknownLocationError, match="Did you mean: France"):
        validate_many({"location": "Frnace", "g_per_kwh": None})
    assert validate_many({"location": "my lab", "g_per_kwh": "120"}) == {"location": "my lab", "g_per_kwh": 120.0}
    assert parse_config({"location": "", "g_per_kwh": " ", "auto_track_queues": " gpu, a100 ,"}) == {
        "location": None, "g_per_kwh": None, "auto_track_queues": ("gpu", "a100")}


# -- what is generated from it ------------------------------------------------------------------------


@pytest.mark.unit
def test_the_readme_has_the_generated_table():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", text, re.DOTALL)
    assert found, "README.md has no <!-- options:start --> ... <!-- options:end --> block"
    assert found.group(1) == markdown_table(), "README's option table is stale: paste airflow_carbon.core.options.markdown_table()"
    assert text.count("<!-- options:start -->") == 1


@pytest.mark.airflow
def test_the_provider_config_section_is_the_tables_config_options():
    from airflow.providers_manager import ProvidersManager

    from airflow_carbon.provider import get_provider_info

    declared = get_provider_info()["config"]["carbon"]["options"]
    assert list(declared) == [o.name for o in options_in("config")]
    kinds = {"str": "string", "list": "string", "choice": "string", "float": "float", "int": "integer", "bool": "boolean"}
    for o in options_in("config"):
        entry = declared[o.name]
        assert entry["type"] == kinds[o.type] and entry["version_added"] == o.version_added
        assert entry["default"] == default_text(o) and entry["example"] == o.example
        assert entry["description"].lower().startswith(o.doc.lower())
    # and Airflow reads it so
    assert ProvidersManager().providers["airflow-carbon"].data["config"] == get_provider_info()["config"]


@pytest.mark.unit
def test_importing_the_provider_metadata_stays_cheap():
    code = "import sys, json, airflow_carbon.provider; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert not loaded & {"airflow", "pynvml", "huggingface_hub", "fastapi"}


@pytest.mark.unit
def test_carbon_settings_has_a_field_per_task_and_config_option():
    from airflow_carbon.settings import LISTENER_OPTIONS, CarbonSettings

    expected = [o for o in OPTIONS if o.where & {"config", "task"} and o.name not in LISTENER_OPTIONS]
    assert [(f.name, f.default) for f in fields(CarbonSettings)] == [(o.name, o.default) for o in expected]


@pytest.mark.airflow
def test_the_operators_take_the_tables_task_options_and_document_them():
    from airflow_carbon import CarbonOperator, CarbonTrackingMixin
    from airflow_carbon.decorators.carbon import carbon_task
    from airflow_carbon.operators.carbon import TASK_OPTIONS, TEMPLATED_OPTIONS

    assert tuple(o.name for o in options_in("task")) == TASK_OPTIONS
    signature = inspect.signature(CarbonTrackingMixin.__init__).parameters.values()
    assert [(p.name, p.default) for p in signature if p.kind is p.KEYWORD_ONLY] == [(name, None) for name in TASK_OPTIONS]
    assert set(TEMPLATED_OPTIONS) >= {"location", "g_per_kwh"}
    for line in doc_lines("task"):
        assert line in CarbonTrackingMixin.__doc__ and line in carbon_task.__doc__
    examples = {o.name: parse_text(o, o.example) for o in options_in("task")}
    op = CarbonOperator(task_id="t", python_callable=print, **examples)
    assert {name: getattr(op.carbon_settings, name) for name in TASK_OPTIONS} == examples


@pytest.mark.unit
def test_the_meter_takes_the_tables_meter_options_with_their_defaults():
    from airflow_carbon import EnergyMeter

    not_options = {"cuda_visible_devices", "cuda_device_order", "powercap_root", "on_checkpoint", "live", "on_progress"}
    params = {n: p.default for n, p in inspect.signature(EnergyMeter).parameters.items() if n not in not_options}
    assert params == {o.name: o.default for o in options_in("meter")}
    for line in doc_lines("meter"):
        assert line in EnergyMeter.__doc__


@pytest.mark.unit
def test_the_cli_flags_are_the_tables_cli_options():
    from airflow_carbon.cli import _parser

    args = _parser().parse_args(["measure", "--", "true"])
    assert {o.name: getattr(args, o.name) for o in options_in("cli")} == {o.name: o.default for o in options_in("cli")}
    for o in options_in("cli"):
        args = _parser().parse_args(["measure", o.cli[-1], o.example, "--", "true"])
        assert getattr(args, o.name) == parse_text(o, o.example)


# -- the same bounds everywhere -------------------------------------------------------------------------


def _cases():
    for o in OPTIONS:
        if o.low is None and o.high is None:
            continue
        values = []
        if o.low is not None and o.low_open:  # the bound itself is refused (a budget of 0)
            values += [(o.low, False), (o.low - 1, False), (o.low + 1, True)]
        elif o.low is not None:
            values += [(o.low, True), (o.low / 2 if o.low > 0 else o.low - 1, False)]
        if o.high is not None:
            values += [(o.high, True), (o.high * 2, False)]
        for place in sorted(o.where):
            for value, ok in values:
                tier = pytest.mark.airflow if place in ("task", "config") else pytest.mark.unit  # an operator, Airflow's conf
                yield pytest.param(o, place, value, ok, id=f"{o.name}-{place}-{value}-{'ok' if ok else 'refused'}", marks=tier)


def _apply(option, place, value, monkeypatch, capsys):
    """Set ``option`` to ``value`` in ``place``; the value it took, or the error message."""
    name = option.name
    try:
        if place == "meter":
            from airflow_carbon import EnergyMeter

            return getattr(EnergyMeter(**{name: value}), name, value)
        if place == "task":
            from airflow_carbon import CarbonOperator

            needs = {"intensity_conn_id": "electricitymaps_default"} if name == "start_within" else {}  # a forecast
            op = CarbonOperator(task_id="t", python_callable=print, location="FR", **needs, **{name: value})
            return getattr(op.carbon_settings, name)
        if place == "config":
            from airflow_carbon.settings import CarbonSettings

            monkeypatch.setenv(f"AIRFLOW__CARBON__{name.upper()}", str(value))
            return getattr(CarbonSettings.from_config(), name)
        from airflow_carbon.cli import _parser

        try:
            return getattr(_parser().parse_args(["measure", option.cli[0], str(value), "--", "true"]), name)
        except SystemExit as exit_:
            assert exit_.code == 2
            raise ValueError(capsys.readouterr().err) from None
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("option, place, value, ok", list(_cases()))
def test_the_same_bounds_everywhere(option, place, value, ok, monkeypatch, capsys):
    got = _apply(option, place, value, monkeypatch, capsys)
    if ok:
        assert got == value
        return
    assert isinstance(got, ValueError), f"{option.name}={value!r} was accepted in {place}"
    shown = {"config": f"[carbon] {option.name} = {str(value)!r}", "cli": f"{option.name}={float(value)!r}"}  # text; parsed text
    named = shown.get(place, f"{option.name}={value!r}") + " is invalid"  # in Python: the value as given
    assert named in str(got)
    assert ("expected a timedelta" if option.type == "duration" else "expected a number") in str(got)


@pytest.mark.unit
def test_the_interval_bounds_are_the_tables():
    assert (OPTION["sampling_interval_s"].low, OPTION["sampling_interval_s"].high) == (0.001, 60)
    assert (OPTION["checkpoint_interval_s"].low, OPTION["checkpoint_interval_s"].high) == (0.1, 86_400)


# -- the [carbon] section -------------------------------------------------------------------------------


@pytest.mark.airflow
def test_a_bad_configured_value_is_an_import_error_naming_it(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CARBON__PUE", "0")
    bag = DagBag(dag_folder=str(ROOT / "tests" / "dags" / "carbon_test_dags.py"))
    (error,) = bag.import_errors.values()
    assert "[carbon] pue = '0' is invalid; expected a number >= 1.0" in error


@pytest.mark.airflow
@pytest.mark.parametrize(
    "option, text, message",
    [
        ("pue", "0", "[carbon] pue = '0' is invalid"),
        ("g_per_kwh", "lots", "[carbon] g_per_kwh = 'lots' is invalid"),
        ("checkpoint_interval_s", "0.01", "[carbon] checkpoint_interval_s = '0.01' is invalid"),
        ("location", "Frnace", "Did you mean: France (FR)?"),
    ],
)
def test_no_configured_value_falls_back_to_a_default(monkeypatch, option, text, message):
    from airflow_carbon.settings import CarbonSettings

    monkeypatch.setenv(f"AIRFLOW__CARBON__{option.upper()}", text)
    with pytest.raises(ValueError) as err:
        CarbonSettings.from_config()
    assert message in str(err.value)


@pytest.mark.airflow
def test_empty_configured_text_is_the_default_and_the_listener_reads_the_table(monkeypatch):
    from airflow_carbon.settings import CarbonSettings, auto_track_filter

    monkeypatch.setenv("AIRFLOW__CARBON__PUE", "")
    monkeypatch.setenv("AIRFLOW__CARBON__LOCATION", " ")
    assert (CarbonSettings.from_config().pue, CarbonSettings.from_config().location) == (1.0, None)
    assert auto_track_filter() == (False, set(), set())
    monkeypatch.setenv("AIRFLOW__CARBON__AUTO_TRACK", "true")
    monkeypatch.setenv("AIRFLOW__CARBON__AUTO_TRACK_POOLS", "training, gpu")
    assert auto_track_filter() == (True, set(), {"training", "gpu"})
    monkeypatch.setenv("AIRFLOW__CARBON__AUTO_TRACK", "sometimes")
    with pytest.raises(ValueError, match=r"\[carbon\] auto_track = 'sometimes' is invalid"):
        auto_track_filter()


# -- templates: checked once rendered, everything else when the DAG is parsed ------------------------------


@pytest.mark.airflow
def test_a_template_waits_for_rendering_and_everything_else_is_checked_at_parse_time():
    from airflow.sdk import DAG, task

    from airflow_carbon import CarbonOperator

    op = CarbonOperator(task_id="t", python_callable=print, location="{{ params.region }}", pue="{{ var.value.pue }}")
    assert op.carbon_templates == {"location": "{{ params.region }}", "pue": "{{ var.value.pue }}"}  # rendered per try
    with pytest.raises(ValueError, match=r"pue=0\.5 is invalid"):
        CarbonOperator(task_id="t", python_callable=print, location="{{ params.region }}", pue=0.5)
    with DAG("mapped", schedule=None):
        CarbonOperator.partial(task_id="ok", python_callable=print, location="{{ params.region }}").expand(op_args=[[1]])
        with pytest.raises(ValueError, match=r"checkpoint_interval_s=0\.01 is invalid"):
            CarbonOperator.partial(task_id="bad", python_callable=print, checkpoint_interval_s=0.01).expand(op_args=[[1]])

        @task.carbon(location="Frnace")
        def train(x: int) -> int:
            return x

        with pytest.raises(ValueError, match="Did you mean: France"):
            train.expand(x=[1])  # a mapped task's __init__ runs on the worker only: checked here instead


@pytest.mark.airflow
def test_tracking_leaves_the_operators_own_template_fields_as_they_are():
    """Templated task options are rendered by the mixin, not as template fields: the Rendered Template view
    and the rendered fields Airflow stores for every try hold the operator's own fields only."""
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator

    from airflow_carbon import CarbonOperator, CarbonTrackingMixin, tracked
    from airflow_carbon.decorators.carbon import _CarbonDecoratedOperator

    class MyTrainer(CarbonTrackingMixin, BashOperator):
        template_fields = (*BashOperator.template_fields, "extra")

    for cls, base in ((CarbonOperator, PythonOperator.template_fields), (tracked(BashOperator), BashOperator.template_fields),
                      (MyTrainer, (*BashOperator.template_fields, "extra")), (_CarbonDecoratedOperator, ("templates_dict", "op_args", "op_kwargs"))):
        assert tuple(cls.template_fields) == tuple(base), cls
    task = tracked(BashOperator)(task_id="t", bash_command="true", location="{{ params.region }}", pue=1.2)
    assert task.carbon_templates == {"location": "{{ params.region }}"} and task.carbon_settings.pue == 1.2
