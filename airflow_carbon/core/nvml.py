"""NVML access: the only module that imports pynvml (the official ``nvidia-ml-py`` bindings).

NVML is initialised lazily, once per process, on first use; importing this module costs nothing.
Every pynvml error leaves here as :class:`NvmlError`.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_carbon.core.devices import VisibleDevices

_UNINITIALIZED = 1
_NOT_SUPPORTED = 3
_GPU_IS_LOST = 15
_NOT_FOUND = 6
_LIBRARY_NOT_FOUND = 12

_init_lock = threading.Lock()
_initialised = False

T = TypeVar("T")


class NvmlError(RuntimeError):
    """NVML is missing or a call failed; ``code`` is NVML's return code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def gpu_lost(self) -> bool:
        return self.code == _GPU_IS_LOST

    @property
    def library_not_found(self) -> bool:
        return self.code == _LIBRARY_NOT_FOUND

    @property
    def not_supported(self) -> bool:
        return self.code == _NOT_SUPPORTED


def _call(fn: Callable[..., T], *args: Any) -> T:
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        raise NvmlError(f"{fn.__name__}: {exc}", getattr(exc, "value", None)) from None


def init() -> Any:
    """Initialise NVML once per process and return the pynvml module; raise NvmlError if unavailable."""
    global _initialised
    try:
        import pynvml
    except ImportError:
        raise NvmlError("pynvml is not installed (pip install nvidia-ml-py)") from None
    if _initialised:
        return pynvml
    with _init_lock:
        if not _initialised:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                raise NvmlError(f"NVML is not available: {exc}", getattr(exc, "value", None)) from None
            _initialised = True
    return pynvml


@dataclass(frozen=True)
class Gpu:
    """A physical GPU the task can see. ``index`` is NVML's (PCI bus order), ``cuda_index`` the task's."""

    index: int
    uuid: str
    name: str
    handle: Any = field(repr=False, compare=False)
    cuda_index: int | None = None
    mig_devices: tuple[str, ...] = ()
    compute_capability: tuple[int, int] = (0, 0)
    """CUDA compute capability; (0, 0) where NVML does not say."""


@dataclass
class _Physical:
    index: int
    handle: Any
    uuid: str
    name: str
    compute_capability: tuple[int, int]
    mig_uuids: tuple[str, ...]


def _physical_gpus(nvml: Any) -> list[_Physical]:
    gpus = []
    for index in range(_call(nvml.nvmlDeviceGetCount)):
        handle = _call(nvml.nvmlDeviceGetHandleByIndex, index)
        try:
            capability = tuple(_call(nvml.nvmlDeviceGetCudaComputeCapability, handle))
        except NvmlError:
            capability = (0, 0)
        gpus.append(
            _Physical(
                index=index,
                handle=handle,
                uuid=_call(nvml.nvmlDeviceGetUUID, handle),
                name=_call(nvml.nvmlDeviceGetName, handle),
                compute_capability=capability,  # type: ignore[arg-type]
                mig_uuids=_mig_uuids(nvml, handle),
            )
        )
    return gpus


def _mig_uuids(nvml: Any, handle: Any) -> tuple[str, ...]:
    try:
        current, _pending = _call(nvml.nvmlDeviceGetMigMode, handle)
        if not current:
            return ()
        uuids = []
        for slot in range(_call(nvml.nvmlDeviceGetMaxMigDeviceCount, handle)):
            try:
                mig = _call(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            except NvmlError:
                continue  # an empty slot
            uuids.append(_call(nvml.nvmlDeviceGetUUID, mig))
        return tuple(uuids)
    except NvmlError:
        return ()  # no MIG support on this GPU or driver


def _cuda_order(gpus: list[_Physical], order: str) -> list[_Physical]:
    if order == "PCI_BUS_ID":
        return list(gpus)  # NVML enumerates in PCI bus order
    # CUDA's default FASTEST_FIRST: approximated by compute capability, ties in PCI order.
    return sorted(gpus, key=lambda g: (-g.compute_capability[0], -g.compute_capability[1], g.index))


def _match_uuid(prefix: str, uuids: list[str]) -> list[str]:
    wanted = prefix.lower()
    return [u for u in uuids if u.lower().startswith(wanted)]


def visible_gpus(visible: VisibleDevices) -> tuple[list[Gpu], list[str]]:
    """The physical GPUs behind ``visible``, in the task's CUDA order, and warnings about the selection.

    A MIG slice resolves to its parent GPU (NVML reports power and energy only for whole GPUs).
    Raises NvmlError when NVML itself is unavailable.
    """
    nvml = init()
    try:
        physical = _physical_gpus(nvml)
    except NvmlError as exc:
        if exc.code != _UNINITIALIZED:
            raise
        # Another library in this process (a tracker, a framework) shut NVML down: initialise it again.
        global _initialised
        _initialised = False
        nvml = init()
        physical = _physical_gpus(nvml)
    ordered = _cuda_order(physical, visible.order)
    warnings: list[str] = []
    if visible.order == "FASTEST_FIRST" and len({g.name for g in physical}) > 1 and visible.refs:
        warnings.append(
            "GPUs of different models and CUDA_DEVICE_ORDER is FASTEST_FIRST: the CUDA index order was "
            "approximated by compute capability; set CUDA_DEVICE_ORDER=PCI_BUS_ID for an exact mapping"
        )
    if visible.refs is None:
        chosen = [(g, i, g.mig_uuids) for i, g in enumerate(ordered)]
    else:
        chosen = []
        for position, ref in enumerate(visible.refs):
            hit = _resolve_ref(ref, ordered, physical)
            if isinstance(hit, str):
                # CUDA ignores the entry that does not resolve and every entry after it.
                warnings.append(f"CUDA_VISIBLE_DEVICES entry {str(ref)!r}: {hit}; it and later entries are ignored")
                break
            chosen.append((hit[0], position, hit[1]))  # the task sees its n-th visible device as cuda:n
    merged: dict[int, Gpu] = {}
    for gpu, cuda_index, migs in chosen:
        previous = merged.get(gpu.index)
        migs = (previous.mig_devices if previous else ()) + tuple(m for m in migs if m)
        merged[gpu.index] = Gpu(
            index=gpu.index,
            uuid=gpu.uuid,
            name=gpu.name,
            handle=gpu.handle,
            cuda_index=previous.cuda_index if previous else cuda_index,
            mig_devices=migs,
            compute_capability=gpu.compute_capability,
        )
    gpus = list(merged.values())
    return gpus, warnings


def _resolve_ref(ref: Any, ordered: list[_Physical], physical: list[_Physical]) -> tuple[_Physical, tuple[str, ...]] | str:
    """The physical GPU (and MIG slice UUIDs) behind one CUDA_VISIBLE_DEVICES entry, or why there is none."""
    if ref.index is not None:
        if ref.index >= len(ordered):
            return f"index {ref.index} is out of range (this host has {len(ordered)} GPU(s))"
        return ordered[ref.index], ()
    if ref.is_mig:
        uuid = ref.uuid
        if uuid.upper().startswith("MIG-GPU-"):  # MIG-GPU-<parent uuid>/<gi>/<ci>, pre-R470 form
            parent_uuid = uuid[4:].split("/")[0]
            parents = [g for g in physical if g.uuid.lower() == parent_uuid.lower()]
            return (parents[0], (uuid,)) if parents else f"no GPU has UUID {parent_uuid}"
        owners = [(g, m) for g in physical for m in _match_uuid(uuid, list(g.mig_uuids))]
        if len(owners) != 1:
            return "no MIG device has this UUID" if not owners else "this UUID prefix matches several MIG devices"
        return owners[0][0], (owners[0][1],)
    matches = [g for g in ordered if g.uuid.lower().startswith(ref.uuid.lower())]
    if len(matches) != 1:
        return "no GPU has this UUID" if not matches else "this UUID prefix matches several GPUs"
    return matches[0], ()


def energy_mj(handle: Any) -> int | None:
    """The GPU's total-energy counter in mJ since the driver loaded, or None where it has none (pre-Volta)."""
    nvml = init()
    try:
        return int(_call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle))
    except NvmlError as exc:
        if exc.not_supported:
            return None
        raise


def power_mw(handle: Any) -> int:
    """The GPU's power draw in mW, as ``nvmlDeviceGetPowerUsage`` reports it (a 1 s average on Ampere and newer but
    GA100; :class:`PowerSensor` reads the instant field where there is one)."""
    return int(_call(init().nvmlDeviceGetPowerUsage, handle))


FI_DEV_POWER_INSTANT = 186
"""``NVML_FI_DEV_POWER_INSTANT`` (nvml.h; pynvml's constant of the same name): the board's instant power, mW."""

INSTANT_POWER_PERIOD_S = 0.02
"""Seconds between updates of an instant power reading (the instant field; ``nvmlDeviceGetPowerUsage`` before
Ampere): NVIDIA's board sensors update at 50-67 Hz on the GPUs measured in the literature, so sampling faster
reads the same value again."""

AVERAGE_POWER_PERIOD_S = 0.1
"""Seconds between reads worth taking of ``nvmlDeviceGetPowerUsage`` where it is a 1 s average (Ampere and newer,
but GA100): an average over 1 s moves little within 100 ms."""

_C_LOOKUP = "_nvmlGetFunctionPointer"
"""pynvml's (cached) lookup of NVML's C functions; where a pynvml lacks it, :class:`PowerSensor` uses its public calls."""
_VALUE_ATTRS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")  # by nvmlValueType_t


def field_value(field: Any) -> float | None:
    """The number an ``nvmlFieldValue_t`` holds, read as its ``valueType`` says; None where NVML returned an
    error for the field or gave a type this module does not know."""
    kind = int(field.valueType)
    if field.nvmlReturn != 0 or kind >= len(_VALUE_ATTRS):
        return None
    return float(getattr(field.value, _VALUE_ATTRS[kind]))


class PowerSensor:
    """One GPU's power reading (mW), with its ctypes buffers allocated once: a read calls NVML's C function
    with them directly and allocates nothing but the int it returns (pynvml builds them at every call).

    ``source``: ``"instant"`` (``NVML_FI_DEV_POWER_INSTANT`` through ``nvmlDeviceGetFieldValues``, where the GPU
    gives it), else ``nvmlDeviceGetPowerUsage``: ``"average"`` where that is a 1 s average (compute capability
    above 8.0: Ampere and newer but GA100), ``"usage"`` where it is the sensor's last reading. ``period_s``:
    how often the reading changes (:data:`INSTANT_POWER_PERIOD_S`, :data:`AVERAGE_POWER_PERIOD_S`).
    """

    def __init__(self, gpu: Gpu) -> None:
        pynvml = init()
        self._pynvml = pynvml
        self._handle = gpu.handle
        self._field: Any = None
        self._value_attr = "uiVal"
        self._fn: Any = None
        self._args: tuple[Any, ...] = ()
        get_pointer = getattr(pynvml, _C_LOOKUP, None)
        if self._probe_field(pynvml, get_pointer):
            self.source, self.period_s = "instant", INSTANT_POWER_PERIOD_S
            return
        averaged = gpu.compute_capability > (8, 0)
        self.source = "average" if averaged else "usage"
        self.period_s = AVERAGE_POWER_PERIOD_S if averaged else INSTANT_POWER_PERIOD_S
        if get_pointer is not None:
            try:
                self._fn = get_pointer("nvmlDeviceGetPowerUsage")
                self._mw = ctypes.c_uint()
                self._args = (ctypes.byref(self._mw),)
            except pynvml.NVMLError:
                self._fn = None

    def _probe_field(self, pynvml: Any, get_pointer: Any) -> bool:
        """Whether the GPU gives the instant field; prepares its buffer and function where it does."""
        try:
            values = pynvml.nvmlDeviceGetFieldValues(self._handle, [FI_DEV_POWER_INSTANT])
        except (AttributeError, pynvml.NVMLError):  # an old pynvml or driver, a MIG handle, a lost GPU
            return False
        if field_value(values[0]) is None:
            return False
        self._value_attr = _VALUE_ATTRS[int(values[0].valueType)]
        if get_pointer is not None:
            try:
                self._fn = get_pointer("nvmlDeviceGetFieldValues")
            except pynvml.NVMLError:
                return True  # read through pynvml's own call
            self._field = pynvml.c_nvmlFieldValue_t()
            self._field.fieldId = FI_DEV_POWER_INSTANT
            self._args = (ctypes.c_int32(1), ctypes.byref(self._field))
        return True

    def read_mw(self) -> int:
        """The GPU's power (mW) now; raises :class:`NvmlError`."""
        if self._fn is None:  # a pynvml without the lookup this relies on: its public calls
            if self.source == "instant":
                field = _call(self._pynvml.nvmlDeviceGetFieldValues, self._handle, [FI_DEV_POWER_INSTANT])[0]
                if field.nvmlReturn != 0:
                    raise NvmlError(f"nvmlDeviceGetFieldValues: {self._pynvml.NVMLError(field.nvmlReturn)}", field.nvmlReturn)
                return int(getattr(field.value, self._value_attr))
            return int(_call(self._pynvml.nvmlDeviceGetPowerUsage, self._handle))
        code = self._fn(self._handle, *self._args)
        if self._field is None:
            if code:
                raise NvmlError(f"nvmlDeviceGetPowerUsage: {self._pynvml.NVMLError(code)}", code)
            return self._mw.value
        code = code or self._field.nvmlReturn
        if code:
            raise NvmlError(f"nvmlDeviceGetFieldValues: {self._pynvml.NVMLError(code)}", code)
        return int(getattr(self._field.value, self._value_attr))


def utilization_percent(handle: Any) -> int:
    """The GPU's utilisation in % (share of the last sample period, 1/6 s to 1 s, with a kernel running)."""
    return int(_call(init().nvmlDeviceGetUtilizationRates, handle).gpu)


def process_utilization(handle: Any, since_us: int = 0) -> list[tuple[int, int, int]]:
    """NVML's per-process utilisation samples of the GPU since ``since_us`` (NVML's timestamp, us):
    (pid, SM %, timestamp us) each; [] where NVML has no sample (NOT_FOUND: no process, or none since then)."""
    try:
        samples = _call(init().nvmlDeviceGetProcessUtilization, handle, since_us)
    except NvmlError as exc:
        if exc.code == _NOT_FOUND:
            return []
        raise
    return [(int(s.pid), int(s.smUtil), int(s.timeStamp)) for s in samples]


def mig_share(gpu: Gpu) -> tuple[float, str]:
    """The share of its parent GPU's compute that ``gpu``'s MIG devices hold: their GPU-instance slices over the
    slices of every MIG device on the GPU (NVML's device attributes), and how it was obtained; where NVML does
    not give slices, the count of MIG devices, said so. NVML has no per-instance power: this is an allocation."""
    nvml = init()
    parent = gpu.handle
    slices: dict[str, int | None] = {}
    for slot in range(_call(nvml.nvmlDeviceGetMaxMigDeviceCount, parent)):
        try:
            mig = _call(nvml.nvmlDeviceGetMigDeviceHandleByIndex, parent, slot)
        except NvmlError:
            continue  # an empty slot
        uuid = _call(nvml.nvmlDeviceGetUUID, mig)
        try:
            slices[uuid] = int(_call(nvml.nvmlDeviceGetAttributes_v2, mig).gpuInstanceSliceCount)
        except NvmlError:
            slices[uuid] = None
    mine = [u for u in slices if any(u == m or m.startswith(u) or u.startswith(m) for m in gpu.mig_devices)]
    if slices and mine and all(v for v in slices.values()):
        held, total = sum(slices[u] or 0 for u in mine), sum(v or 0 for v in slices.values())
        return held / total, f"{held} of the {total} compute slices of its MIG devices"
    total = max(len(slices), len(gpu.mig_devices), 1)
    held = min(len(mine) or len(gpu.mig_devices), total)
    return held / total, f"{held} of its {total} MIG devices (NVML gave no slice counts)"
