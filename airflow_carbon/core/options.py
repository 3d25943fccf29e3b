"""Every option of airflow-carbon, declared once: name, type, unit, default, bounds, a one-line doc and
where it may be set.

Places: ``config`` (the ``[carbon]`` section of Airflow's configuration, also
``AIRFLOW__CARBON__<OPTION>``), ``task`` (an argument of ``@task.carbon``, ``CarbonOperator`` and
``tracked(...)``), ``cli`` (a flag of ``airflow-carbon measure``) and ``meter`` (a keyword argument of
:class:`~airflow_carbon.core.meter.EnergyMeter`). Everything else is generated from :data:`OPTIONS`:
the provider's config section, :class:`~airflow_carbon.settings.CarbonSettings`, the operators'
arguments and docstrings, the CLI's flags and the README's option table (:func:`markdown_table`).

Validation happens here, once, with the same bounds everywhere: :func:`validate` for a value given in
Python (a number's text is accepted too: templates render to text), :func:`parse_text` for text (the
environment, the config, a CLI flag). Both raise :class:`OptionError` (a ``ValueError``) naming the
option, the value and what is accepted. The location is checked by
:func:`~airflow_carbon.core.intensity.resolve_intensity`, whose ``UnknownLocationError`` suggests
close matches.

Standard library only: the provider metadata imports this module, so it must stay cheap.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPTION",
    "OPTIONS",
    "PLACES",
    "Option",
    "OptionError",
    "default_doc",
    "default_text",
    "doc_lines",
    "expected",
    "is_template",
    "markdown_table",
    "options_in",
    "parse_config",
    "parse_duration_s",
    "parse_text",
    "validate",
    "validate_many",
    "with_option_docs",
]

PLACES = ("config", "task", "cli", "meter")
"""Where an option may be set: the ``[carbon]`` config, a task argument, a CLI flag, an EnergyMeter argument."""

TYPES = ("str", "float", "int", "bool", "choice", "list", "duration")
"""``list``: names, comma-separated in text (a tuple in Python). ``duration``: a ``timedelta`` or seconds in
Python, seconds or ``90s``/``30m``/``4h``/``1d``/``1h30m``/ISO 8601 (``PT4H``) in text; the value is seconds (float)."""

SECTION = "carbon"
"""The Airflow config section of the ``config`` options."""


@dataclass(frozen=True)
class Option:
    """One option. ``low`` and ``high`` are inclusive bounds, in ``unit``."""

    name: str
    type: str
    doc: str
    """One line, with the unit where there is one."""
    default: Any = None
    """None: optional (not set). A ``list`` option's default is ``()``."""
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """``low`` itself is refused (a value must be greater than it)."""
    choices: tuple[str, ...] = ()
    where: frozenset[str] = frozenset()
    cli: tuple[str, ...] = ()
    """The CLI flags, the long one first."""
    metavar: str | None = None
    templated: bool = False
    """A task argument that may be a Jinja template, rendered with the try's context when it starts, then validated."""
    version_added: str = "0.1.0"
    example: str | None = None
    """A real value, as text (the provider metadata's example)."""
    accepted: str | None = None
    """What is accepted, in words, where the type and bounds do not say it all."""
    default_doc: str | None = None
    """The default, in words, where the value alone does not say what it means."""
    suggested: tuple[str, ...] = ()
    """A ``str`` option's documented values: other text is accepted with a warning."""
    pattern: str | None = None
    """A ``str`` option's accepted form, a regular expression the whole (stripped) text must match."""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type {self.type!r} is not one of {TYPES}")
        if not self.where <= set(PLACES):
            raise ValueError(f"option {self.name}: where {sorted(self.where)} is not a subset of {PLACES}")
        if ("cli" in self.where) != bool(self.cli):
            raise ValueError(f"option {self.name}: a CLI option needs its flags, and only a CLI option has them")


def _where(*places: str) -> frozenset[str]:
    return frozenset(places)


OPTIONS: tuple[Option, ...] = (
    # where the energy is drawn, and what it stands for
    Option(
        "location", "str",
        "where the energy is drawn: a country, state, province, grid zone or cloud region; it picks the grid intensity",
        where=_where("config", "task", "cli", "meter"), cli=("--location", "-l"), metavar="WHERE", templated=True,
        example="CA-QC",
        accepted="a country ('FR', 'FRA', 'France'), a state or province ('US-CA', 'California, USA', 'CA-QC', "
        "'Quebec', 'CN-BJ'), a Nordic bidding zone ('SE3') or a cloud region ('gcp:us-central1', "
        "'aws:us-east-1', 'azure:eastus')",
        default_doc="none (the world average, with a warning)",
    ),
    Option(
        "g_per_kwh", "float", "grid carbon intensity in gCO2e/kWh, overriding the location's figure",
        unit="gCO2e/kWh", low=0, where=_where("config", "task", "cli", "meter"), cli=("--g-per-kwh",), metavar="G",
        templated=True, example="56", default_doc="the location's figure",
    ),
    Option(
        "pue", "float",
        "data-centre power usage effectiveness (facility energy / IT energy), applied to the measured IT energy: "
        "1.0 counts the IT energy only; hyperscale clouds report ~1.1, an average data centre ~1.5",
        default=1.0, low=1.0, where=_where("config", "task", "cli", "meter"), cli=("--pue",), metavar="PUE",
        templated=True, example="1.1",
    ),
    Option(
        "intensity_conn_id", "str",
        "the Airflow Connection of a live grid-intensity source (Connection types electricitymaps, watttime, "
        "uk_carbon_intensity): grams from the source's figures for the hours each try ran, the location's bundled "
        "figure where the source gives none",
        where=_where("config", "task"), example="electricitymaps_default", version_added="0.2.0",
        accepted="a Connection id: letters, digits, '_', '-' and '.' (e.g. electricitymaps_default, watttime_default, "
        "uk_carbon_intensity_default)",
        pattern=r"[\w.-]{1,250}",
        default_doc="none (the bundled table's yearly figure)",
    ),
    Option(
        "intensity_zone", "str",
        "the live source's zone or region, overriding the one mapped from location (an Electricity Maps zone, "
        "a WattTime region, a GB region id 1-17 or outward postcode)",
        where=_where("config", "task"), example="DE", version_added="0.2.0",
        accepted="a zone or region of the live source: letters, digits, '_' and '-' (e.g. 'DE', 'US-CAL-CISO', "
        "'CAISO_NORTH', '13', 'RG10')",
        pattern=r"[A-Za-z0-9_-]{1,64}",
        default_doc="the zone mapped from location",
    ),
    Option(
        "intensity_cache_dir", "str",
        "where the task processes of a worker host share live grid-intensity figures (a directory on local disk)",
        where=_where("config"), example="/var/cache/airflow-carbon/intensity", version_added="0.2.0",
        accepted="a directory path", default_doc="$XDG_CACHE_HOME/airflow-carbon/intensity (~/.cache/...)",
    ),
    Option(
        "state_dir", "str",
        "where the measuring windows of a host register, so that windows sharing a GPU split its energy "
        "instead of each counting all of it (a directory on local disk, the same for every task process of the host)",
        where=_where("config", "cli", "meter"), cli=("--state-dir",), metavar="DIR", example="/run/airflow-carbon",
        version_added="0.3.0", accepted="a directory path",
        default_doc="$XDG_RUNTIME_DIR/airflow-carbon, else /tmp/airflow-carbon-<uid>",
    ),
    # when to start: a carbon-aware start within a deadline
    Option(
        "start_within", "duration",
        "how long a tracked task may wait for a greener start, in s (a timedelta, or text such as '8h'): before "
        "its work it reads the forecast of intensity_conn_id and defers to the start with the lowest mean "
        "forecast intensity over expected_duration",
        unit="s", low=60, where=_where("task"), example="8h", version_added="0.3.0",
        default_doc="none (start at once)",
    ),
    Option(
        "expected_duration", "duration",
        "how long the task's work is expected to take, in s (a timedelta, or text such as '2h'), for start_within",
        unit="s", low=1, where=_where("task"), example="2h", version_added="0.3.0",
        default_doc="the median of this task's successful tries in its recent runs, else 1 h",
    ),
    Option(
        "min_saving_pct", "float",
        "the least forecast saving, in %, of the mean intensity against starting now, for which start_within waits",
        default=5.0, unit="%", low=0, high=100, where=_where("config", "task"), example="10", version_added="0.3.0",
    ),
    # budgets
    Option(
        "co2_budget_g", "float", "the task's emissions budget in gCO2e, over all its tries",
        unit="gCO2e", low=0, low_open=True, where=_where("task"), example="500", version_added="0.3.0",
        default_doc="none",
    ),
    Option(
        "energy_budget_kwh", "float", "the task's energy budget in kWh (before PUE), over all its tries",
        unit="kWh", low=0, low_open=True, where=_where("task"), example="2.5", version_added="0.3.0",
        default_doc="none",
    ),
    Option(
        "on_budget_exceeded", "choice",
        "what crossing a budget does: 'warn' (a warning in the log and the record) or 'stop' (the try is stopped "
        "within about a second and the task fails without further retries)",
        default="warn", choices=("warn", "stop"), where=_where("config", "task"), example="stop", version_added="0.3.0",
    ),
    Option(
        "budget_grace_s", "float",
        "after a budget stop, how long the task's child processes have between SIGTERM and SIGKILL, in s",
        default=10.0, unit="s", low=0, high=600, where=_where("config", "task"), example="30", version_added="0.3.0",
    ),
    # how it is measured
    Option(
        "sampling_interval_s", "float", "time between GPU power samples, in s",
        default=0.1, unit="s", low=0.001, high=60, where=_where("config", "task", "cli", "meter"),
        cli=("--sampling-interval",), metavar="S", example="0.5",
    ),
    Option(
        "checkpoint_interval_s", "float",
        "time between checkpoints of a running try's record into the task state store, in s: "
        "a try that is killed loses at most this much",
        default=60.0, unit="s", low=0.1, high=86_400, where=_where("config", "task", "meter"), example="300",
    ),
    Option(
        "keep_records_on_clear", "bool",
        "also keep a try that succeeded or was skipped in the task state store (one more execution-API round trip, "
        "about 10 ms a try), so that clearing the finished task instance carries its tries' records into the next "
        "try; without it, a try's record is stored only where a retry can follow it (a failed try) and at "
        "checkpoints, and Airflow deletes the finished try's XCom when a cleared task instance runs again",
        default=False, where=_where("config", "task"), example="True", version_added="0.4.0",
    ),
    Option(
        "gpu_energy", "choice",
        "how GPU energy is measured: 'auto' reads the GPU's energy counter where it has one, "
        "'sampled' always integrates sampled power",
        default="auto", choices=("auto", "sampled"), where=_where("cli", "meter"), cli=("--gpu-energy",),
        example="sampled",
    ),
    Option(
        "cpu_w_per_core", "float",
        "power of a busy CPU core in W, for the CPU estimate where RAPL is unreadable: server CPUs draw 4-7 W a core",
        default=7.0, unit="W", low=0, where=_where("cli", "meter"), cli=("--cpu-w-per-core",), metavar="W",
        example="4.4",
    ),
    Option(
        "ram_w_per_gb", "float",
        "power of a GB of resident memory in W/GB, for the RAM estimate: the Green Algorithms calculator's figure",
        default=0.3725, unit="W/GB", low=0, where=_where("cli", "meter"), cli=("--ram-w-per-gb",), metavar="W",
        example="0.5",
    ),
    # what the task is, and where it runs
    Option(
        "training_type", "str", "what the task trains, for the model card's co2_eq_emissions",
        where=_where("task"), example="fine-tuning", suggested=("pre-training", "fine-tuning"),
        accepted="'pre-training' or 'fine-tuning' (or other text)", default_doc="none",
    ),
    Option(
        "gpu_queue", "str", "queue given to tracked tasks that set none, so that they run on GPU workers",
        where=_where("config"), example="gpu", accepted="a queue name", default_doc="none (Airflow's default queue)",
    ),
    # the listener
    Option(
        "auto_track", "bool",
        "measure every task that matches auto_track_queues and auto_track_pools through the listener, without decorating it",
        default=False, where=_where("config"), example="True",
    ),
    Option(
        "auto_track_queues", "list", "queues whose tasks the listener measures (with auto_track), comma-separated",
        default=(), where=_where("config"), example="gpu,a100", default_doc="any queue",
    ),
    Option(
        "auto_track_pools", "list", "pools whose tasks the listener measures (with auto_track), comma-separated",
        default=(), where=_where("config"), example="training", default_doc="any pool",
    ),
)
"""The options, in the order they are documented."""

OPTION: Mapping[str, Option] = {o.name: o for o in OPTIONS}
"""The options by name."""


def options_in(place: str) -> tuple[Option, ...]:
    """The options that may be set in ``place`` (one of :data:`PLACES`), in table order."""
    if place not in PLACES:
        raise ValueError(f"place={place!r} is invalid; expected one of {', '.join(map(repr, PLACES))}")
    return tuple(o for o in OPTIONS if place in o.where)


def _option(option: Option | str) -> Option:
    return OPTION[option] if isinstance(option, str) else option


# -- messages ---------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return repr(x) if isinstance(x, float) else str(x)


def expected(option: Option | str, *, example: bool = True) -> str:
    """What ``option`` accepts, in words (the end of every error message about it)."""
    o = _option(option)
    if o.accepted:
        return o.accepted
    if o.type == "duration":
        text = "a timedelta, seconds, or text such as '90s', '30m', '4h', '1d', '1h30m' or 'PT4H'"
        if o.low is not None:
            text += f", at least {_duration_words(o.low)}"
    elif o.type in ("float", "int"):
        text = "a number" if o.type == "float" else "a whole number"
        if o.low is not None and o.high is not None:
            text += f" from {_num(o.low)} to {_num(o.high)}"
        elif o.low is not None:
            text += f" {'>' if o.low_open else '>='} {_num(o.low)}"
        elif o.high is not None:
            text += f" <= {_num(o.high)}"
        if o.unit:
            text += f" {o.unit}"
    elif o.type == "choice":
        text = " or ".join(map(repr, o.choices))
    elif o.type == "bool":
        text = "True or False"
    elif o.type == "list":
        text = "names, comma-separated"
    else:
        text = "a non-empty text"
    if example and o.example is not None and o.type != "choice":
        text += f" (e.g. {o.example})"
    return text


class OptionError(ValueError):
    """A bad option value: ``option=value is invalid; expected ...`` (``[carbon] option = 'text' ...`` for
    a configured one). ``reason`` replaces the expectation where a check says more (a location)."""

    def __init__(self, option: Option | str, value: Any, *, reason: str | None = None, section: str | None = None) -> None:
        self.option = _option(option)
        self.value = value
        self.reason = reason
        self.section = section
        head = f"[{section}] {self.option.name} = {value!r}" if section else f"{self.option.name}={value!r}"
        message = f"{head} is invalid: {reason}" if reason else f"{head} is invalid; expected {expected(self.option)}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, as exceptions crossing processes must be
        return _option_error, (self.option.name, self.value, self.reason, self.section)


def _option_error(name: str, value: Any, reason: str | None, section: str | None) -> OptionError:
    return OptionError(name, value, reason=reason, section=section)


# -- validation -------------------------------------------------------------------------------------


def is_template(value: Any) -> bool:
    """Whether ``value`` is a Jinja template (``"{{ ... }}"``), rendered when the task runs."""
    return isinstance(value, str) and "{{" in value


def _number(o: Option, value: Any) -> float | int:
    if isinstance(value, bool):
        raise OptionError(o, value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise OptionError(o, value) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(o, value)
    if o.type == "int":
        if value != int(value):
            raise OptionError(o, value)
        value = int(value)
    if (o.low is not None and (value < o.low or (o.low_open and value == o.low))) or (o.high is not None and value > o.high):
        raise OptionError(o, value)
    return float(value) if o.type == "float" else value


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_UNIT_S = {"d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _duration_words(seconds: float) -> str:
    for unit, name in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= unit and seconds % unit == 0:
            n = int(seconds // unit)
            return f"{n} {name}" + ("s" if n != 1 else "")
    return f"{_num(seconds)} s"


def parse_duration_s(value: Any) -> float:
    """Seconds (float) of a ``timedelta``, a number of seconds, or text: seconds, ``90s``/``30m``/``4h``/``1d``,
    a sum of those (``1h30m``) or ISO 8601 (``PT4H``, ``P1DT2H``). ValueError for anything else."""
    from datetime import timedelta

    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    iso = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?", text.upper())
    if iso and text.upper() not in ("P", "PT") and any(iso.groups()):
        d, h, m, sec = (float(g) if g else 0.0 for g in iso.groups())
        return d * 86_400 + h * 3600 + m * 60 + sec
    compact = text.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if parts and "".join(n + u for n, u in parts).lower() == compact.lower():
        return sum(float(n) * _UNIT_S[u.lower()] for n, u in parts)
    raise ValueError(f"not a duration: {value!r}")


def _duration(o: Option, value: Any) -> float:
    try:
        seconds = parse_duration_s(value)
    except ValueError:
        raise OptionError(o, value) from None
    if not math.isfinite(seconds) or (o.low is not None and seconds < o.low) or (o.high is not None and seconds > o.high):
        raise OptionError(o, value)
    return seconds


_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def validate(option: Option | str, value: Any) -> Any:
    """``value`` for ``option``, in the option's type (a number's text becomes the number), or
    :class:`OptionError`. None is accepted where the default is None (not set). A location is only
    checked to be text here: whether it is known depends on ``g_per_kwh`` (beside an explicit intensity
    any text is a name), which :func:`validate_many` checks."""
    o = _option(option)
    if value is None:
        if o.default is None:
            return None
        raise OptionError(o, value)
    if o.type in ("float", "int"):
        return _number(o, value)
    if o.type == "duration":
        return _duration(o, value)
    if o.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise OptionError(o, value)
    if o.type == "choice":
        if value not in o.choices:
            raise OptionError(o, value)
        return value
    if o.type == "list":
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        raise OptionError(o, value)
    if not isinstance(value, str) or not value.strip():
        raise OptionError(o, value)
    if o.pattern is not None and not re.fullmatch(o.pattern, value.strip()):
        raise OptionError(o, value)
    if o.suggested and value not in o.suggested:
        warnings.warn(
            f"{o.name}={value!r} is not one of the documented values {o.suggested}; it is kept as given",
            UserWarning,
            stacklevel=2,
        )
    return value


def validate_many(values: Mapping[str, Any]) -> dict[str, Any]:
    """Each value validated as :func:`validate` does, then the location with ``g_per_kwh``, as the meter
    resolves them (:func:`~airflow_carbon.core.intensity.resolve_intensity`): any location text is a
    name beside an explicit intensity; without one, an unknown location raises ``UnknownLocationError``,
    which suggests close matches."""
    out = {name: validate(name, value) for name, value in values.items()}
    if out.get("start_within") is not None and "intensity_conn_id" in out and not out["intensity_conn_id"]:
        raise OptionError("start_within", values["start_within"], reason="a carbon-aware start needs a forecast: set "
                          "intensity_conn_id (an electricitymaps, watttime or uk_carbon_intensity Connection) beside it")
    if "location" in out:
        from airflow_carbon.core.intensity import resolve_intensity

        resolve_intensity(out["location"], out.get("g_per_kwh"))
    return out


def parse_text(option: Option | str, text: str, *, empty_is_default: bool = True) -> Any:
    """``text`` (the environment, the config, a CLI flag) as ``option``'s value, validated. Empty text is
    the default (None where the option is optional) unless ``empty_is_default`` is false. A number
    that is out of bounds is named as the number (``pue=-1.0 is invalid``), other text as given."""
    o = _option(option)
    stripped = text.strip()
    if not stripped:
        if empty_is_default:
            return o.default
        raise OptionError(o, text)
    return validate(o, stripped)


def parse_config(texts: Mapping[str, str], *, section: str = SECTION) -> dict[str, Any]:
    """Configured text by option name (``[section]`` values) as the options' values, validated together
    (:func:`validate_many`: a location beside a configured ``g_per_kwh``). Empty text is the default.
    An error names the section, the option and the text as configured (``[carbon] pue = '0' is invalid;
    expected a number >= 1.0``), never a silent default."""
    values = {name: text.strip() or _option(name).default for name, text in texts.items()}
    try:
        return validate_many(values)
    except OptionError as exc:
        raise OptionError(exc.option, texts[exc.option.name], section=section) from None
    except ValueError as exc:  # the location's own message: an unknown location, with suggestions
        if "location" not in texts:  # pragma: no cover - only the location has a message of its own
            raise
        raise OptionError("location", texts["location"], reason=str(exc), section=section) from exc


# -- documentation ----------------------------------------------------------------------------------


def default_text(option: Option | str) -> str:
    """The default as configuration text: ``""`` where none is set (empty text is the default)."""
    o = _option(option)
    if o.default is None:
        return ""
    if o.type == "list":
        return ",".join(o.default)
    return str(o.default)


def default_doc(option: Option | str) -> str:
    """The default, in words: ``1.0``, ``0.1 s``, ``'auto'``, ``none: the world average, with a warning``."""
    o = _option(option)
    if o.default_doc:
        return o.default_doc
    if o.type == "choice":
        return repr(o.default)
    text = _num(o.default) if isinstance(o.default, (int, float)) and not isinstance(o.default, bool) else str(o.default)
    if o.unit == "%":
        return f"{text} %"
    return f"{text} {o.unit}" if o.unit else text


def doc_lines(place: str) -> list[str]:
    """One reStructuredText bullet per option of ``place``: name, doc, what is accepted, the default."""
    lines = []
    for o in options_in(place):
        templated = "; templated" if o.templated and place == "task" else ""
        lines.append(f"- ``{o.name}``: {o.doc}. Accepted: {expected(o, example=False)}; default: {default_doc(o)}{templated}.")
    return lines


def with_option_docs(doc: str | None, place: str) -> str:
    """``doc`` (a docstring, indented by four spaces) followed by :func:`doc_lines` of ``place``."""
    return (doc or "").rstrip() + "\n\n" + "\n".join(f"    {line}" for line in doc_lines(place)) + "\n"


_PLACE_NAMES = {"config": "`[carbon]`", "task": "task", "meter": "`EnergyMeter`"}


def _places(o: Option) -> str:
    parts = []
    for place in PLACES:
        if place not in o.where:
            continue
        if place == "cli":
            parts.append("/".join(f"`{flag}`" for flag in o.cli))
        elif place == "task" and o.templated:
            parts.append("task (templated)")
        else:
            parts.append(_PLACE_NAMES[place])
    return ", ".join(parts)


def markdown_table(options: Iterable[Option] = OPTIONS) -> str:
    """The README's option table: every option, where it may be set, its default, what it accepts."""
    rows = [
        "| option | set in | default | accepted | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in options:
        rows.append(f"| `{o.name}` | {_places(o)} | {default_doc(o)} | {expected(o, example=False)} | {o.doc} |")
    return "\n".join(rows) + "\n"
