"""EnergyMeter: measure one window (a task try) and produce its record.

Measurement never breaks the measured code: every failure inside the meter becomes a warning in the
record and a ``warnings.warn``; only bad configuration raises, and it does so in the constructor,
before anything runs.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings as _warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from airflow_carbon._version import __version__
from airflow_carbon.core import host as _host
from airflow_carbon.core import nvml
from airflow_carbon.core.devices import VisibleDevices, parse_visible_devices
from airflow_carbon.core.emissions import DEFAULT_PUE, emissions_g
from airflow_carbon.core.gpu import GpuWindow
from airflow_carbon.core.intensity import GridIntensity, resolve_intensity
from airflow_carbon.core.options import OPTION, validate, with_option_docs
from airflow_carbon.core.record import (
    SCHEMA_VERSION,
    Component,
    Components,
    GpuEntry,
    Record,
    device_counts,
    format_hardware,
)
from airflow_carbon.core.sampler import Sampler
from airflow_carbon.core.sharing import WindowRegistry
from airflow_carbon.core.units import j_to_kwh, kwh_to_j, utc_iso

if TYPE_CHECKING:  # the live path (httpx) is imported only by those who use it
    from airflow_carbon.core.live import LiveIntensity

DEFAULT_SAMPLING_INTERVAL_S: float = OPTION["sampling_interval_s"].default
"""Seconds between GPU power samples (100 ms); the option table's default, as every default here."""

FAST_SAMPLING_DIVISOR = 10
"""While sampled GPU power moves fast, it is sampled this many times more often, but no more often than the power
sensor updates (:attr:`~airflow_carbon.core.nvml.PowerSensor.period_s`): 20 ms by default."""

DEFAULT_CHECKPOINT_INTERVAL_S: float = OPTION["checkpoint_interval_s"].default
"""Seconds between checkpoints of the running record (when a checkpoint callback is given)."""

HOST_SAMPLING_INTERVAL_S = 1.0
"""Seconds between reads of RAPL, of the process tree's resident memory and of NVML's GPU utilisation."""

PROGRESS_INTERVAL_S = 0.5
"""Seconds between reports of the window's energy and emissions so far to ``on_progress`` (a budget's guard)."""

BOUNDARY_SNAP_S = 1.0
"""The energy at a live source's interval boundary is read at the first sample after it; within this many
seconds of the boundary it counts as the boundary's (the error is at most this long at the try's power)."""


class MeterWarning(UserWarning):
    """Something could not be measured; the record's ``warnings`` say what."""


class EnergyMeter:
    """Measures GPU, CPU and RAM energy between :meth:`start` and :meth:`stop`, and the CO2e it stands for.

    Use as a context manager (``with EnergyMeter(location="FR") as meter: ...; meter.record``) or call
    ``start()`` and ``stop()``. Bad values raise ValueError here, naming the value and what is accepted
    (the bounds of the option table, :data:`airflow_carbon.core.options.OPTIONS`, as everywhere else).
    Arguments besides the options below:

    - ``cuda_visible_devices`` / ``cuda_device_order``: which GPUs are measured; default to the environment's.
    - ``on_checkpoint``: called from the sampling thread every ``checkpoint_interval_s`` with the record
      so far, so a process that is killed loses at most one interval.
    - ``on_progress``: called from the sampling thread every :data:`PROGRESS_INTERVAL_S` with the window's
      energy (kWh) and emissions (g) so far (a budget's :class:`~airflow_carbon.core.budget.BudgetGuard`).
    - ``powercap_root``: where RAPL's counters are read (tests point it elsewhere).
    - ``live``: a :class:`~airflow_carbon.core.live.LiveIntensity`: grams from the live source's figures
      for the hours the window ran (energy read at each of its interval boundaries and at checkpoints),
      the bundled figure where the source gives none (the record's ``intensity.fallback`` says why).

    Options (generated from the option table):
    """

    __doc__ = with_option_docs(__doc__, "meter")

    def __init__(
        self,
        *,
        location: str | None = OPTION["location"].default,
        g_per_kwh: float | None = OPTION["g_per_kwh"].default,
        pue: float = DEFAULT_PUE,
        sampling_interval_s: float = DEFAULT_SAMPLING_INTERVAL_S,
        gpu_energy: Literal["auto", "sampled"] = OPTION["gpu_energy"].default,
        cuda_visible_devices: str | None = None,
        cuda_device_order: str | None = None,
        cpu_w_per_core: float = _host.DEFAULT_CPU_W_PER_CORE,
        ram_w_per_gb: float = _host.DEFAULT_RAM_W_PER_GB,
        powercap_root: str = _host.DEFAULT_POWERCAP_ROOT,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        live: LiveIntensity | None = None,
        on_progress: Callable[[float, float], None] | None = None,
        state_dir: str | None = OPTION["state_dir"].default,
    ) -> None:
        # the location is checked with the intensity: beside an explicit g_per_kwh any text is a name
        self.intensity: GridIntensity = resolve_intensity(location, validate("g_per_kwh", g_per_kwh))
        self.pue: float = validate("pue", pue)
        self.sampling_interval_s: float = validate("sampling_interval_s", sampling_interval_s)
        self.gpu_energy: str = validate("gpu_energy", gpu_energy)
        self.visible: VisibleDevices = parse_visible_devices(
            cuda_visible_devices if cuda_visible_devices is not None else os.environ.get("CUDA_VISIBLE_DEVICES"),
            cuda_device_order if cuda_device_order is not None else os.environ.get("CUDA_DEVICE_ORDER"),
        )
        self._host = _host.HostWindow(
            cpu_w_per_core=validate("cpu_w_per_core", cpu_w_per_core),
            ram_w_per_gb=validate("ram_w_per_gb", ram_w_per_gb),
            powercap_root=powercap_root,
        )
        self._on_checkpoint = on_checkpoint
        self.state_dir: str | None = validate("state_dir", state_dir)
        self.checkpoint_interval_s: float = validate("checkpoint_interval_s", checkpoint_interval_s)
        self._next_checkpoint_t = math.inf
        self.on_progress = on_progress
        self._next_progress_t = math.inf
        self.live = live
        self._energy_points: list[tuple[float, float]] = []  # (Unix s, cumulative J) where the energy is known
        self._next_boundary_s = math.inf
        self._prefetch: threading.Thread | None = None
        self._gpu: GpuWindow | None = None
        self._gpus: list[nvml.Gpu] = []
        self._gpu_missing: str | None = None
        self._sampler: Sampler | None = None
        self._warnings: list[str] = []
        self._t0 = self._wall0 = 0.0
        self._next_host_t = 0.0
        self.record: dict[str, Any] | None = None
        """The record of the last finished window."""
        self.sampler_cpu_s: float | None = None
        """CPU time (s) the sampling thread used in the last window."""

    # -- window ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the window: find the GPUs, read the counters, start the sampling thread. Never raises."""
        if self._sampler is not None:
            raise RuntimeError("this EnergyMeter is already measuring; stop() it first")
        self._warnings = list(self.intensity.warnings)
        self._wall0 = time.time()
        self._open_gpus()
        if self._gpu is not None:  # registered a moment before the clock starts: it shares, never double counts
            self._guard("GPU sharing failed to start", self._gpu.register, time.monotonic())
        self._guard("CPU/RAM measurement failed to start", self._host.start, time.monotonic())
        self._sampler = Sampler(self._tick, self.sampling_interval_s)
        self._t0 = time.monotonic()
        self._next_host_t = self._t0 + HOST_SAMPLING_INTERVAL_S
        if self._on_checkpoint is not None:
            self._next_checkpoint_t = self._t0 + self.checkpoint_interval_s
        self._next_progress_t = self._t0 + PROGRESS_INTERVAL_S if self.on_progress is not None else math.inf
        self._energy_points = [(self._wall0, 0.0)]
        if self.live is not None:
            self._next_boundary_s = self.live.next_boundary(self._wall0)
            self._prefetch_at(self._wall0)
        if self._gpu is not None:  # last, so that the counter window starts where the task does
            self._guard("GPU measurement failed to start", self._gpu.start, self._t0)
            if self._gpu.needs_fast_sampling:  # energy from sampled power: sample fast while it moves, as fast as it can change
                fast_s = max(self.sampling_interval_s / FAST_SAMPLING_DIVISOR, self._gpu.sensor_period_s or 0.0)
                if fast_s < self.sampling_interval_s:
                    self._sampler.fast_interval_s = fast_s
        self._sampler.start()

    def stop(self) -> Record:
        """Close the window and return its record (also kept in ``self.record``). Never raises."""
        if self._sampler is None:
            raise RuntimeError("this EnergyMeter was not started")
        t1, wall1 = time.monotonic(), time.time()
        if self._gpu is not None:  # first, so that the counter window ends where the task does
            self._guard("GPU measurement failed", self._gpu.read_end_counters, t1)
        sampler, self._sampler = self._sampler, None
        sampler.stop()
        duration_s = t1 - self._t0
        self.sampler_cpu_s = sampler.cpu_s
        if sampler.error is not None:
            self._warnings.append(f"the sampling thread stopped early: {sampler.error!r}")
        gpu_entries: list[GpuEntry] = []
        if self._gpu is not None:
            result = self._guard("GPU measurement failed", self._gpu.stop, time.monotonic(), duration_s)
            if result is not None:
                gpu_entries, gpu_warnings = result
                self._warnings.extend(gpu_warnings)
        host = self._guard("CPU/RAM measurement failed", self._host.read, t1, duration_s)
        if host is not None:
            cpu, ram, host_warnings = host
            self._warnings.extend(host_warnings)
        else:
            cpu = {"energy_kwh": None, "method": "missing"}
            ram = {"energy_kwh": None, "method": "missing"}
        if self._prefetch is not None:
            self._prefetch.join()  # bounded by the source's timeouts
        wall1 = self._wall0 + duration_s
        self.record = self._build_record(wall1, duration_s, gpu_entries, cpu, ram, self._warnings, final=True)
        if self.live is not None:
            self.live.close()
        for message in self._warnings:
            if not message.startswith(("CPU energy estimated", "CPU energy is RAPL")):
                _warnings.warn(message, MeterWarning, stacklevel=2)
        return self.record

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()  # the measured code's exception, if any, propagates unchanged

    # -- internals ---------------------------------------------------------------------------------
    def _open_gpus(self) -> None:
        self._gpu, self._gpus, self._gpu_missing = None, [], None
        if self.visible.refs == ():
            return  # CUDA_VISIBLE_DEVICES="": no GPU for this task
        try:
            self._gpus, selection_warnings = nvml.visible_gpus(self.visible)
        except nvml.NvmlError as exc:
            # No NVIDIA driver library at all means CUDA cannot reach a GPU either: a CPU-only host, and
            # 0 GPU energy is exact. A driver that is there but fails leaves the GPU energy missing.
            if not (exc.library_not_found and self.visible.refs is None):
                self._gpu_missing = f"GPU energy is missing: {exc}"
                self._warnings.append(self._gpu_missing)
            return
        except Exception as exc:  # pragma: no cover - defensive: never break the task
            self._gpu_missing = f"GPU energy is missing: {exc!r}"
            self._warnings.append(self._gpu_missing)
            return
        self._warnings.extend(selection_warnings)
        self._gpu = GpuWindow(self._gpus, use_counter=self.gpu_energy == "auto", registry=WindowRegistry(self.state_dir))

    def _tick(self, t: float) -> bool:
        fast = self._gpu.sample(t) if self._gpu is not None else False
        if self._wall0 + (t - self._t0) >= self._next_boundary_s:
            self._boundary(t)
        if t >= self._next_host_t:
            self._host.sample(t)
            if self._gpu is not None:
                self._gpu.sample_utilization()
                self._gpu.attribute(t)
            if self.live is not None:  # the source's own intervals, once known, may end sooner than its granularity
                self._next_boundary_s = min(self._next_boundary_s, self.live.next_boundary(self._wall0 + (t - self._t0)))
            self._next_host_t = t + HOST_SAMPLING_INTERVAL_S
        if t >= self._next_checkpoint_t:
            # a fixed schedule from the start: a late tick does not push every later checkpoint back
            while self._next_checkpoint_t <= t:
                self._next_checkpoint_t += self.checkpoint_interval_s
            self._checkpoint()
        if t >= self._next_progress_t:
            self._next_progress_t = t + PROGRESS_INTERVAL_S
            self._progress()
        return fast

    def _so_far(self, t: float) -> tuple[float, list[GpuEntry], Component, Component, list[str]]:
        """The window's duration (s), GPU entries, CPU and RAM components and their warnings at ``t``."""
        duration_s = t - self._t0
        warnings: list[str] = []
        gpu_entries: list[GpuEntry] = []
        if self._gpu is not None:
            gpu_entries, gpu_warnings = self._gpu.snapshot(t, duration_s)
            warnings.extend(gpu_warnings)
        cpu, ram, host_warnings = self._host.read(t, duration_s)
        warnings.extend(host_warnings)
        return duration_s, gpu_entries, cpu, ram, warnings

    def _checkpoint(self) -> None:
        """Hand the record so far to ``on_checkpoint``; runs on the sampling thread, never raises. Its time is
        read now, just before the counters, not at the tick's start: the tick's other reads come between."""
        try:
            duration_s, gpu_entries, cpu, ram, warnings = self._so_far(time.monotonic())
            record = self._build_record(self._wall0 + duration_s, duration_s, gpu_entries, cpu, ram, [*self._warnings, *warnings])
            self._energy_points.append((self._wall0 + duration_s, kwh_to_j(record["energy_kwh"])))
            record["warnings"].append(f"checkpoint after {duration_s:.0f} s: the window was still open")
            self._on_checkpoint(record)  # type: ignore[misc]
        except Exception as exc:
            self._warnings.append(f"a checkpoint failed: {exc!r}")

    def _progress(self) -> None:
        """Hand the energy (kWh) and emissions (g) so far to ``on_progress``; runs on the sampling thread, never raises."""
        try:
            duration_s, gpu_entries, cpu, ram, _ = self._so_far(time.monotonic())
            energy_kwh = _energy_kwh({"gpu": _gpu_component(gpu_entries, self._gpu_missing), "cpu": cpu, "ram": ram})
            if self.live is not None:
                _, grams = self._live_intensity(self._wall0 + duration_s, energy_kwh, fetch_missing=False)
            else:
                grams = emissions_g(energy_kwh, self.intensity.g_per_kwh, self.pue)
            self.on_progress(energy_kwh, grams)  # type: ignore[misc]
        except Exception as exc:
            message = f"the energy so far could not be reported (a budget is not watched): {exc!r}"
            if message not in self._warnings:
                self._warnings.append(message)

    def _boundary(self, t: float) -> None:
        """A live source's interval boundary passed: note the energy there, look the next interval up
        (off the sampling thread). Never raises."""
        assert self.live is not None
        wall = self._wall0 + (t - self._t0)
        boundary, self._next_boundary_s = self._next_boundary_s, self.live.next_boundary(wall)
        try:
            *_, gpu_entries, cpu, ram, _ = self._so_far(t)
            energy_kwh = _energy_kwh({"gpu": _gpu_component(gpu_entries, self._gpu_missing), "cpu": cpu, "ram": ram})
            when = boundary if wall - boundary <= BOUNDARY_SNAP_S and boundary > self._energy_points[-1][0] else wall
            self._energy_points.append((when, kwh_to_j(energy_kwh)))
        except Exception as exc:
            self._warnings.append(f"the energy at a grid-intensity interval boundary could not be read: {exc!r}")
        self._prefetch_at(wall)

    def _prefetch_at(self, wall: float) -> None:
        """Look the interval at ``wall`` (Unix s) up in the background, so that it is known (and cached) even
        if the source is lost later in the try."""
        if self._prefetch is not None and self._prefetch.is_alive():
            return
        live = self.live
        assert live is not None
        def look_up() -> None:
            live.lookup(wall, wall)
            self._next_boundary_s = min(self._next_boundary_s, live.next_boundary(wall))

        self._prefetch = threading.Thread(target=look_up, name="airflow-carbon-intensity", daemon=True)
        self._prefetch.start()

    def _guard(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            self._warnings.append(f"{what}: {exc!r}")
            return None

    def _build_record(
        self,
        wall1: float,
        duration_s: float,
        gpu_entries: list[GpuEntry],
        cpu: Component,
        ram: Component,
        warnings: list[str],
        *,
        final: bool = False,
    ) -> Record:
        gpu_component = _gpu_component(gpu_entries, self._gpu_missing)
        components: Components = {"gpu": gpu_component, "cpu": cpu, "ram": ram}
        energy_kwh = _energy_kwh(components)
        missing = [name for name, c in components.items() if c["energy_kwh"] is None]
        if missing:
            warnings.append(f"energy_kwh leaves out {', '.join(missing)}: not measured (see above)")
        if self.live is not None:
            intensity, grams = self._live_intensity(wall1, energy_kwh, fetch_missing=final)
            if final and "fallback" in intensity:
                warnings.append(_fallback_warning(intensity, self.live))
        else:
            intensity, grams = self.intensity.to_dict(), emissions_g(energy_kwh, self.intensity.g_per_kwh, self.pue)
        return {
            "schema_version": SCHEMA_VERSION,
            "started_at": utc_iso(self._wall0),
            "ended_at": utc_iso(wall1),
            "duration_s": duration_s,
            "energy_kwh": energy_kwh,
            "components": components,
            "gpus": gpu_entries,
            "pue": self.pue,
            "intensity": intensity,  # type: ignore[typeddict-item]
            "emissions_g": grams,
            "hardware_used": hardware_used(gpu_entries),
            "host": _host.hostname(),
            "measured_by": {"package": "airflow-carbon", "version": __version__, **_host.platform_info()},
            "warnings": list(warnings),
        }


    def _live_intensity(self, wall1: float, energy_kwh: float, *, fetch_missing: bool) -> tuple[dict[str, Any], float]:
        """The live ``intensity`` and grams for the window so far, ending at ``wall1`` (Unix s) with ``energy_kwh``."""
        assert self.live is not None
        end_j = kwh_to_j(energy_kwh)
        points, high = [], 0.0
        for t, e in self._energy_points:  # energy at each known instant, never decreasing, never above the end's
            if t < wall1:
                high = min(max(high, e), end_j)
                points.append((t, high))
        points.append((max(wall1, points[-1][0] + 1e-6) if points else wall1, end_j))
        if len(points) < 2:
            points.insert(0, (wall1 - 1e-6, 0.0))
        return self.live.intensity(points, self.pue, fetch_missing=fetch_missing)


def _energy_kwh(components: Components) -> float:
    """The measured energy (kWh): the components that could be measured."""
    return sum(c["energy_kwh"] for c in components.values() if c["energy_kwh"] is not None)


def _fallback_warning(intensity: dict[str, Any], live: LiveIntensity) -> str:
    fb = live.fallback
    where = f"Connection {live.conn_id!r}" if live.conn_id else live.source
    if intensity["method"] == "live":
        lost = sum(s["energy_kwh"] for s in intensity["segments"] if s["source"] == fb.source)
        total = sum(s["energy_kwh"] for s in intensity["segments"])
        share = f"{100 * lost / total:.0f} % of the energy" if total > 0 else "part of the window"
        return (f"grid intensity: {share} used the bundled figure {fb.g_per_kwh:g} gCO2e/kWh ({fb.name}) instead of "
                f"{where}: {intensity['fallback']}")
    return (f"grid intensity: the live source ({where}) gave no figure; the bundled figure {fb.g_per_kwh:g} gCO2e/kWh "
            f"({fb.name}) was used: {intensity['fallback']}")


def _gpu_component(entries: list[GpuEntry], missing: str | None) -> Component:
    if missing:
        return {"energy_kwh": None, "method": "missing"}
    if not entries:
        return {"energy_kwh": 0.0, "method": "none"}
    methods = {e["method"] for e in entries}
    known = [e["energy_j"] for e in entries if e["energy_j"] is not None]
    if not known:
        return {"energy_kwh": None, "method": "missing"}
    method = methods.pop() if len(methods) == 1 else "mixed"
    return {"energy_kwh": j_to_kwh(sum(known)), "method": method}


def hardware_used(gpu_entries: list[GpuEntry]) -> str:
    """E.g. '2 x NVIDIA H200, 1 x AMD EPYC 7763 64-Core Processor': the GPUs measured and this host's CPU
    sockets, by the records' hardware rule (:func:`~airflow_carbon.core.record.device_counts`)."""
    cpu = (_host.cpu_model(), _host.cpu_sockets())  # cached: read once per process
    return format_hardware(device_counts((e["name"] for e in gpu_entries), [cpu]))


def measure(**kwargs: Any) -> EnergyMeter:
    """An :class:`EnergyMeter` to use as a context manager: ``with measure(location="FR") as m: ...``."""
    return EnergyMeter(**kwargs)
