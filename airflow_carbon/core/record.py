"""The energy record: one JSON object per measured window, its types, its validation, and the helpers
every reader of records shares.

A record stays a plain JSON dict everywhere (XCom, the task state store, files, the UI's JSON): the
TypedDicts below (:class:`Record`, :class:`Components` / :class:`Component`, :class:`GpuEntry`,
:class:`Intensity`, :class:`MeasuredBy`, :class:`TaskIdentity`) only describe it, at no runtime cost. The
JSON Schema (draft-07) shipped as ``airflow_carbon/core/schemas/record-v2.schema.json`` is the contract;
tests/test_record_types.py checks that the types and the schema name the same fields, required alike,
with compatible JSON types. What readers share lives here too: the component names
(:data:`COMPONENTS`), the order of task tries (:func:`sort_key`), a task instance's label
(:func:`task_label`) and the hardware rule (:func:`device_counts`, :func:`format_hardware`).

This module imports nothing from the rest of the package (nor from Airflow), so any process can read
and check records. (No ``from __future__ import annotations`` here: with it, Python 3.11's TypedDict
takes ``NotRequired[...]`` fields for required ones.)

Schema evolution
----------------
``schema_version`` says which shape a record has. It stays **1** when a field is *added* as optional:
older records stay valid, and readers treat a missing optional field as unknown (an empty cell, "not
stated"), never as 0. Renaming or removing a field, changing a unit or a meaning, or making a field
required is a new version: ``SCHEMA_VERSION`` goes to 2, a new schema file
(``schemas/record-v2.schema.json``) joins :data:`SCHEMA_RESOURCES`, the TypedDicts describe v2, and one
function in :data:`UPGRADES` (``1: v1 -> v2``) turns a valid v1 record into a v2 record. :func:`load_record`
validates a record against the schema of its own version and then upgrades it (:func:`upgrade`), so every reader
sees the newest shape; a record newer than this package reads is refused with a message saying to
upgrade airflow-carbon.
"""

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NotRequired, TypedDict, Union, get_args

SCHEMA_VERSION = 2
"""The version of the records this package writes, and the newest it reads. Version 2 (0.2.0) added live
grid intensity: ``intensity.method`` may be ``"live"``, with ``segments``, ``zone``, ``signal``,
``live_source``, ``conn_id`` and ``fallback``. A version 1 record is a valid version 2 record once its
version says 2 (:data:`UPGRADES`)."""

SCHEMA_RESOURCE = "schemas/record-v2.schema.json"
"""The newest version's JSON Schema, relative to ``airflow_carbon.core``."""

SCHEMA_RESOURCES = {1: "schemas/record-v1.schema.json", 2: SCHEMA_RESOURCE}
"""Every version this package reads -> its JSON Schema."""


# -- the types (what record-v2.schema.json says, field for field) -----------------------------------
ComponentName = Literal["gpu", "cpu", "ram"]
ComponentMethod = Literal["counter", "sampled", "rapl", "estimated", "mixed", "none", "missing"]
GpuMethod = Literal["counter", "sampled", "missing"]
IntensityMethod = Literal["explicit", "dataset", "world-average", "live"]
EmissionFactor = Literal["lifecycle", "direct"]
Signal = Literal["average", "marginal"]
LiveSource = Literal["electricitymaps", "watttime", "uk_carbon_intensity"]
Status = Literal["success", "failed", "skipped", "running", "interrupted"]


class Component(TypedDict):
    """``components.gpu`` / ``.cpu`` / ``.ram``: energy (kWh, before PUE; None when it could not be
    obtained) and the method that obtained it; the rest says what the figure rests on."""

    energy_kwh: float | None
    method: ComponentMethod
    model: NotRequired[str]  # cpu: the CPU model name
    sockets: NotRequired[int]  # cpu: CPU packages in the host
    logical_cpus: NotRequired[int]  # cpu: logical CPUs in the host
    packages: NotRequired[int]  # cpu, rapl: RAPL package zones read
    cpu_time_s: NotRequired[float]  # cpu: the process tree's CPU time, s
    w_per_core: NotRequired[float]  # cpu, estimated: W per busy core
    mean_rss_gb: NotRequired[float]  # ram: the tree's time-averaged resident memory, GB
    w_per_gb: NotRequired[float]  # ram: W per GB resident
    host_total_gb: NotRequired[float]  # ram: the host's RAM, GB
    mean_utilization_percent: NotRequired[float]  # cpu and ram: the tree's, %
    attribution: NotRequired[Literal["process-tree", "cpu-time-share"]]  # cpu: how the host's CPU energy was split
    device_energy_kwh: NotRequired[float | None]  # cpu, rapl: the packages' whole energy, kWh
    share: NotRequired[float | None]  # cpu: energy_kwh / device_energy_kwh
    memory: NotRequired[Literal["pss", "rss"]]  # ram: which resident memory the estimate used
    mean_pss_gb: NotRequired[float]  # ram: the tree's time-averaged proportional set size, GB


class Components(TypedDict):
    """Energy by component; the keys are :data:`COMPONENTS`."""

    gpu: Component
    cpu: Component
    ram: Component


class GpuEntry(TypedDict):
    """One measured GPU (``gpus[]``): energy (J) and power (W) over the window."""

    index: int
    cuda_index: NotRequired[int | None]
    uuid: str
    name: str
    energy_j: float | None
    method: GpuMethod
    mean_power_w: float | None
    peak_power_w: float | None
    samples: NotRequired[int]
    complete: NotRequired[bool]
    mean_utilization_percent: NotRequired[float | None]
    utilization_samples: NotRequired[int]
    mig_devices: NotRequired[list[str]]
    device_energy_j: NotRequired[float | None]  # what the whole GPU drew, J; energy_j is this window's part
    share: NotRequired[float | None]  # energy_j / device_energy_j
    attribution: NotRequired[Literal["exclusive", "utilization", "equal-split", "mig-allocation"]]
    concurrent_windows: NotRequired[int]  # the most tracked windows open on the GPU at once


class SegmentEntry(TypedDict):
    """A piece of a try's window in one interval of a live source (``intensity.segments[]``): UTC ISO times,
    its energy (kWh, before PUE) and its grid intensity (gCO2e/kWh)."""

    start: str
    end: str
    energy_kwh: float
    g_per_kwh: float
    source: str
    estimated: bool
    energy_estimated: bool


class Intensity(TypedDict):
    """The grid intensity used (gCO2e/kWh; energy-weighted over ``segments`` when live) and where it comes from."""

    g_per_kwh: float
    location: str | None
    name: str
    source: str
    year: int | None
    license: NotRequired[str | None]
    method: IntensityMethod
    emission_factor: NotRequired[EmissionFactor | None]
    zone: NotRequired[str | None]
    signal: NotRequired[Signal]
    live_source: NotRequired[LiveSource]
    conn_id: NotRequired[str | None]
    segments: NotRequired[list[SegmentEntry]]
    fallback: NotRequired[str]


class MeasuredBy(TypedDict):
    package: str
    version: str
    os: NotRequired[str]
    python_version: NotRequired[str]


class TaskIdentity(TypedDict):
    """The Airflow task try a record measured (``task``; the Airflow layer adds it)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    hostname: NotRequired[str | None]
    queue: NotRequired[str | None]
    training_type: NotRequired[str | None]


class Shift(TypedDict):
    """A carbon-aware start (``shift``; the Airflow layer adds it where ``start_within`` is set). Times are
    ISO 8601 UTC; ``avoided_g`` (g) is the try's energy at the forecast intensity of starting when it was
    requested, minus its emissions (negative where the wait cost more; None where either is unknown)."""

    requested_at: str
    planned_start: str
    started_at: str
    waited_s: float
    deferred: NotRequired[bool]
    expected_duration_s: float
    expected_duration_from: NotRequired[str]
    start_within_s: float
    clipped_to_s: NotRequired[float | None]
    forecast_g_per_kwh_now: NotRequired[float | None]
    forecast_g_per_kwh_planned: NotRequired[float | None]
    forecast_source: NotRequired[str | None]
    avoided_g: NotRequired[float | None]
    avoided_basis: NotRequired[str | None]
    reason: str


class BudgetEntry(TypedDict):
    """A task's budgets (``budget``): gCO2e and kWh before PUE over all its tries, spent up to this try."""

    co2_g: float | None
    energy_kwh: float | None
    spent_g: float
    spent_kwh: float
    exceeded: bool
    action: Literal["none", "warn", "stop"]
    on_exceeded: NotRequired[Literal["warn", "stop"]]


class Record(TypedDict):
    """One measured window (one task try). Units are in the names: _s, _j, _kwh, _w, _g, g_per_kwh."""

    schema_version: Literal[2]
    started_at: str
    ended_at: str
    duration_s: float
    energy_kwh: float
    components: Components
    gpus: list[GpuEntry]
    pue: float
    intensity: Intensity
    emissions_g: float
    hardware_used: str
    host: str
    measured_by: MeasuredBy
    warnings: list[str]
    status: NotRequired[Status]
    task: NotRequired[TaskIdentity]
    shift: NotRequired[Shift]
    budget: NotRequired[BudgetEntry]


# -- what every reader shares ---------------------------------------------------------------------
COMPONENTS: tuple[ComponentName, ...] = get_args(ComponentName)  # ("gpu", "cpu", "ram")
"""The components of a record's energy, in the order every table, chart and log line shows them."""


def sort_key(record: Record) -> tuple[str, int, int, str]:
    """Records in task order: task id, map index, try number, then run id (an Airflow record's ``task``)."""
    task = record["task"]
    return task["task_id"], task["map_index"], task["try_number"], task["run_id"]


def task_label(task: Mapping[str, Any]) -> str:
    """A task instance for people: ``train`` for an unmapped one (map index -1), ``train[2]`` for a mapped one.
    ``task`` is anything with ``task_id`` and ``map_index``: a record's ``task``, a task instance row."""
    return task["task_id"] + (f"[{task['map_index']}]" if task["map_index"] >= 0 else "")


def device_counts(gpu_names: Iterable[str], cpus: Iterable[tuple[str, int]] = ()) -> dict[str, int]:
    """The hardware rule: device name -> count, the GPUs first, then the CPUs' sockets per model, each
    most used first (ties in the order given). ``cpus`` is (model, sockets) per host."""
    cpu_counts: Counter[str] = Counter()
    for model, sockets in cpus:
        cpu_counts[model] += sockets
    return dict([*Counter(gpu_names).most_common(), *cpu_counts.most_common()])


def format_hardware(counts: Mapping[str, int]) -> str:
    """Device counts as records and cards write them: '8 x NVIDIA A100-SXM4-80GB, 2 x AMD EPYC 7763'."""
    return ", ".join(f"{n} x {name}" for name, n in counts.items())


# -- validation and versions ----------------------------------------------------------------------
class RecordError(ValueError):
    """A record that does not follow the schema; the message names the field and the bad value."""


@functools.cache
def record_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema (draft-07) of records of ``version`` (default: the newest) as a dict."""
    from importlib import resources

    return json.loads(resources.files("airflow_carbon.core").joinpath(SCHEMA_RESOURCES[version]).read_text("utf-8"))


@functools.cache
def _fast_check(version: int) -> Any:
    """The schema compiled to Python by fastjsonschema: the fast path where :func:`_fast_types` cannot be built."""
    import fastjsonschema

    return fastjsonschema.compile(record_schema(version))


@functools.cache
def _validator(version: int) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(record_schema(version))


def _version(record: dict[str, Any]) -> int:
    """The schema version to check ``record`` against; RecordError when it is newer than this package reads.
    Anything else that is not a version we read is checked against the newest schema, which names it."""
    version = record.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        raise RecordError(
            f"invalid record field schema_version: {version} is newer than this airflow-carbon reads "
            f"({SCHEMA_VERSION}); upgrade airflow-carbon"
        )
    return version if type(version) is int and version in SCHEMA_RESOURCES else SCHEMA_VERSION


def validate_record(record: Any) -> Record:
    """Return ``record`` unchanged if it follows the schema of its ``schema_version``, else raise RecordError
    naming the field (a version newer than this package reads included). The fast check (:func:`_fast_types`)
    accepts; anything it refuses is judged, and explained, by the schema itself."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    version = _version(record)
    types = _fast_types(version)
    if types is not None:
        import msgspec

        try:
            msgspec.convert(record, types)
            return record  # type: ignore[return-value]
        except msgspec.ValidationError:
            pass
    else:
        import fastjsonschema

        try:
            _fast_check(version)(record)
            return record  # type: ignore[return-value]
        except fastjsonschema.JsonSchemaException:
            pass
    return _explain(record, version)


def _explain(record: dict[str, Any], version: int) -> Record:
    """The schema's own verdict on a record the fast check refused: RecordError naming the first bad field
    (jsonschema names it best), or the record where the schema accepts it (the fast check is the stricter)."""
    errors = sorted(_validator(version).iter_errors(record), key=lambda e: (len(e.absolute_path), e.json_path))
    if errors:
        first = errors[0]
        field = first.json_path.removeprefix("$.") if first.absolute_path else "(record)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RecordError(f"invalid record field {field}: {first.message}{more}")
    return record  # type: ignore[return-value]


def decode_record(data: str | bytes) -> Record:
    """A record from its JSON text, validated and in the newest shape, for reading only (the readers that
    stream thousands of records: files, the card). A record of the newest version comes as a read-only
    view (a msgspec Struct), decoded and checked in one pass without building dicts; it reads like the dict
    (``r["gpus"][0]["uuid"]``, ``r.get("status")``, ``"shift" in r``) for every field the schema names.
    Any other record comes as :func:`load_record`'s dict. RecordError names the bad field, as load_record does."""
    record = _fast_decode(data, many=False)
    return record if record is not None else load_record(data)  # load_record judges it and names the field


def decode_records(data: str | bytes) -> list[Record] | None:
    """A JSON array of records (one task instance's tries, as an XCom value carries them) from its text, for
    reading only, decoded and checked in one pass of msgspec's C code into :func:`decode_record`'s views, where
    every one is valid and of the newest version; None otherwise (an older version, a bad record, not JSON, or
    no msgspec): the caller then judges the items one by one (:func:`load_record`), naming the bad one."""
    return _fast_decode(data, many=True)  # type: ignore[no-any-return]


def _fast_decode(data: str | bytes, *, many: bool) -> Any:
    """``data`` (a record, or a JSON array of them: ``many``) decoded and checked in one pass by the newest
    version's compiled types; None where they are not built or refuse it (the caller then judges it)."""
    types = _fast_types(SCHEMA_VERSION)
    if types is None:
        return None
    import msgspec

    try:
        return msgspec.json.decode(data, type=list[types] if many else types)  # type: ignore[valid-type]
    except msgspec.DecodeError:
        return None


# -- the fast check: the schema compiled to msgspec types ------------------------------------------
# Records are read by the hundred thousand (a model card over a large sweep), and jsonschema (or even
# fastjsonschema's generated code) spends far longer checking a record than reading it. So each version's
# JSON Schema is compiled, once, into msgspec Struct types, which msgspec's C code decodes and checks in
# one pass. The compiler knows only the keywords below and refuses any other, so the types can never be
# looser than the schema: every type, required field, enum, const, bound, pattern and closed object is
# there; where the types are stricter (1.0 for an integer, an int beyond 64 bits), the record falls back
# to jsonschema, which accepts it or names the field. See docs/scaling.md, "Validating records at scale".

_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples",
                          "format"})  # format: an annotation in draft-07 (jsonschema does not assert it either)
_KNOWN = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "items", "enum", "const", "$ref",
                         "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern"}


class _Unsupported(Exception):
    """The schema uses a keyword the compiler does not translate: the fast check is not built."""


@functools.cache
def _view_base() -> type:
    import msgspec

    class RecordView(msgspec.Struct, kw_only=True, frozen=True):
        """A checked record (or a part of one) as msgspec decoded it: reads like the dict for the fields the
        schema names; a field the record does not have reads as absent (KeyError, ``get``'s default)."""

        def __getitem__(self, key: str) -> Any:
            value = getattr(self, key, msgspec.UNSET)
            if value is msgspec.UNSET:
                raise KeyError(key)
            return value

        def get(self, key: str, default: Any = None) -> Any:
            value = getattr(self, key, msgspec.UNSET)
            return default if value is msgspec.UNSET else value

        def __contains__(self, key: str) -> bool:
            return getattr(self, key, msgspec.UNSET) is not msgspec.UNSET

        def to_dict(self) -> dict[str, Any]:
            """The plain JSON dict (the fields the schema names)."""
            return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    return RecordView


@functools.cache
def _fast_types(version: int) -> Any:
    """The msgspec type of a record of ``version`` (a :class:`RecordView` Struct), or None where msgspec is
    missing or the schema uses a keyword this compiler does not translate (the checks then use fastjsonschema)."""
    try:
        import msgspec  # noqa: F401
    except ImportError:
        return None
    schema = record_schema(version)
    try:
        return _compile(schema, schema, {}, "RecordView")
    except _Unsupported:
        return None


def _compile(node: dict[str, Any], root: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    """The msgspec type that accepts what the schema ``node`` accepts, or less; _Unsupported otherwise."""

    unknown = set(node) - _KNOWN
    if unknown:
        raise _Unsupported(f"{name}: {sorted(unknown)}")
    if "$ref" in node:
        ref = node["$ref"]
        if len(set(node) - _ANNOTATIONS) != 1 or not ref.startswith("#/$defs/"):
            raise _Unsupported(f"{name}: $ref {ref}")
        key = ref.removeprefix("#/$defs/")
        if key not in defs:
            defs[key] = _compile(root["$defs"][key], root, defs, key.title() + "View")
        return defs[key]
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else node["enum"]
        if set(node) - _ANNOTATIONS - {"const", "enum"} or not all(v is None or type(v) in (str, int) for v in values):
            raise _Unsupported(f"{name}: enum {values}")
        literals = [v for v in values if v is not None]
        return Union[tuple(([Literal[tuple(literals)]] if literals else []) + ([None] if None in values else []))]  # noqa: UP007 (built from a tuple at runtime)
    kinds = node.get("type")
    if kinds is None:
        raise _Unsupported(f"{name}: no type")
    return Union[tuple(_compile_kind(kind, node, root, defs, name) for kind in ([kinds] if isinstance(kinds, str) else kinds))]  # noqa: UP007


_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}
_FOR_KIND = {"string": {"pattern"}, "number": set(_BOUNDS), "integer": set(_BOUNDS), "boolean": set(), "null": set(),
             "array": {"items"}, "object": {"properties", "required", "additionalProperties"}}


def _compile_kind(kind: str, node: dict[str, Any], root: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    """One JSON type of ``node`` with the keywords that apply to it (a keyword of another type ignores it)."""
    from typing import Annotated

    import msgspec

    if kind not in _FOR_KIND:
        raise _Unsupported(f"{name}: type {kind}")
    if kind in ("number", "integer"):
        bounds = {_BOUNDS[k]: v for k, v in node.items() if k in _BOUNDS}
        if not all(type(v) in (int, float) for v in bounds.values()):
            raise _Unsupported(f"{name}: bounds {bounds}")
        base = float if kind == "number" else int
        return Annotated[base, msgspec.Meta(**bounds)] if bounds else base
    if kind == "string":
        return Annotated[str, msgspec.Meta(pattern=node["pattern"])] if "pattern" in node else str
    if kind in ("boolean", "null"):
        return bool if kind == "boolean" else None
    if kind == "array":
        return list[_compile(node["items"], root, defs, name + "Item")] if "items" in node else list
    properties, required = node.get("properties"), set(node.get("required", ()))
    closed = node.get("additionalProperties", True)
    if properties is None or closed not in (True, False) or not required <= set(properties):
        raise _Unsupported(f"{name}: object")
    fields = []
    for key, sub in properties.items():
        if not key.isidentifier() or key.startswith("_") or hasattr(_view_base(), key):
            raise _Unsupported(f"{name}: field {key}")
        typ = _compile(sub, root, defs, name + key.title())
        fields.append((key, typ) if key in required else (key, Union[typ, msgspec.UnsetType], msgspec.UNSET))  # noqa: UP007
    return msgspec.defstruct(name, fields, bases=(_view_base(),), kw_only=True, frozen=True, forbid_unknown_fields=not closed, gc=False)


def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 only added optional fields and the ``"live"`` method: a v1 record needs its version changed."""
    return {**record, "schema_version": 2}


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}
"""Version v -> the function that turns a valid v record into a v + 1 record (a new dict; the input is left alone)."""


def upgrade(record: dict[str, Any]) -> Record:
    """A valid record of any version this package reads, in the newest shape (:data:`SCHEMA_VERSION`):
    each step of :data:`UPGRADES` from its version on, in turn. A record of the newest version is returned
    as is (the same object)."""
    version = record["schema_version"]
    while version < SCHEMA_VERSION:
        record = UPGRADES[version](record)
        version = record["schema_version"]
    return record  # type: ignore[return-value]


def load_record(data: str | bytes | dict[str, Any]) -> Record:
    """Parse (when given JSON text), validate and :func:`upgrade` a record; raise RecordError naming the bad field."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise RecordError(f"a record must be JSON: {exc}") from None
    return upgrade(validate_record(data))  # type: ignore[arg-type]
