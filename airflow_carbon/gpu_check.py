"""``airflow-carbon gpu-check``: is this machine's NVIDIA stack ready for airflow-carbon? One JSON report.

Meant for a machine with NVIDIA GPUs and no network: it needs only what ``pip install -e .`` installs
(``torch`` is used where it is importable, never required) and finishes in well under 5 minutes (about a
minute with the default 20 s load). It

- lists the GPUs and what NVML supports on each: the total-energy counter, the instant power field
  (``nvmlDeviceGetFieldValues``, ``NVML_FI_DEV_POWER_INSTANT``), MIG (mode, MIG devices, their compute slices)
  and per-process utilisation; and which power reading the meter samples on it, how often at most
  (:class:`~airflow_carbon.core.nvml.PowerSensor`: ``meter_power_source``, ``meter_power_period_s``);
- runs a load: PyTorch matmuls on the first GPU not in MIG mode where ``torch`` has CUDA, else an idle phase
  and then a phase observed with ``nvidia-smi`` (the report says which ran);
- compares, per GPU and phase, the energy counter, our integral of sampled power (``nvmlDeviceGetPowerUsage``
  and the instant field every 50 ms) and the integral of ``nvidia-smi --query-gpu=power.draw`` (polled every
  0.5 s), and an :class:`~airflow_carbon.core.meter.EnergyMeter` window around the load (the product's own
  path) against the counter;
- checks that a window given a GPU UUID (and a MIG device UUID, where a GPU is in MIG mode) as
  ``CUDA_VISIBLE_DEVICES`` measures that GPU, and that two concurrent windows on one GPU, in two processes,
  split its energy without counting any of it twice;
- writes the report (``build/gpu-check.json`` by default), prints a short summary, and exits 0 when every
  check passed, 1 otherwise. ``bench/README.md`` ("make gpu-check: reading the report") explains it.

This module imports the core only; pynvml is reached through :mod:`airflow_carbon.core.nvml` (its ``init()``
returns the module, for the few calls the core does not wrap).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airflow_carbon._version import __version__
from airflow_carbon.core import nvml
from airflow_carbon.core.gpu import integrate_j
from airflow_carbon.core.meter import EnergyMeter

DEFAULT_OUT = "build/gpu-check.json"
DEFAULT_SECONDS = 20.0
MAX_SECONDS = 60.0
BUDGET_S = 300.0
"""The check must finish within this many seconds; a step that would not fit is skipped (and said so)."""
SAMPLE_INTERVAL_S = 0.05
"""Seconds between our NVML reads of each GPU (counter, power, instant field); 0.1 with more than 4 GPUs."""
SMI_INTERVAL_S = 0.5
"""Seconds between ``nvidia-smi --query-gpu=index,power.draw`` polls."""
AGREE = 0.02
"""Two energy figures within this fraction of each other agree."""
SHARED_TOLERANCE = 0.03
"""The shared-GPU split passes when its sum is within this fraction of what the device drew."""
PROBE_WINDOW_S = 1.0
"""Seconds of each CUDA_VISIBLE_DEVICES window."""
READY_TIMEOUT_S = 150.0
"""Seconds a worker process may take to get ready (import torch, initialise CUDA, warm up)."""
UPDATES_PROBE_S = 1.5
"""Seconds of back-to-back reads, during the load, that tell how often each power reading really changes."""
_G_PER_KWH = 100.0  # the windows' grid intensity: irrelevant here, given so that no location is looked up
_SMI_QUERY = ["--query-gpu=index,power.draw", "--format=csv,noheader,nounits"]
_WORKER_CODE = "from airflow_carbon.gpu_check import _worker; _worker()"


# -- small numeric helpers ---------------------------------------------------------------------------
Series = list[tuple[float, float]]  # (time.monotonic() s, value) in time order


def _interp(series: Series, t: float, slack_s: float = 0.0) -> float | None:
    """The series' value at ``t`` (linear between samples); None outside its span (beyond ``slack_s``)."""
    if not series or t < series[0][0] - slack_s or t > series[-1][0] + slack_s:
        return None
    if t <= series[0][0]:
        return series[0][1]
    if t >= series[-1][0]:
        return series[-1][1]
    lo, hi = 0, len(series) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if series[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, v0), (t1, v1) = series[lo], series[hi]
    return v0 if t1 <= t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def _integral_j(series: Series, a: float, b: float) -> float | None:
    """Trapezoidal integral of power samples (W) over [a, b]; None where the samples do not cover it."""
    if b <= a or len(series) < 2:
        return None
    va, vb = _interp(series, a, 1e-3), _interp(series, b, 1e-3)
    if va is None or vb is None:
        return None
    return integrate_j([(a, va), *((t, v) for t, v in series if a < t < b), (b, vb)])


def _counter_j(series: Series, a: float, b: float) -> float | None:
    """Energy (J) from counter readings (mJ) over [a, b]; None where they do not cover it or go backwards."""
    ea, eb = _interp(series, a, 1e-3), _interp(series, b, 1e-3)
    if ea is None or eb is None or eb < ea:
        return None
    return (eb - ea) / 1000.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 5)


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _pct(ratio: float) -> str:
    off = abs(ratio - 1) * 100
    return f"{off:.2f} %" if off < 1 else f"{off:.1f} %"


# -- inventory ---------------------------------------------------------------------------------------
def _nvml_text(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        value = fn(*args)
    except Exception as exc:  # pynvml.NVMLError, or a function this pynvml / driver does not have
        return None if _not_supported(exc) else f"error: {exc}"
    return value.decode() if isinstance(value, bytes) else value


def _not_supported(exc: BaseException) -> bool:
    return getattr(exc, "value", None) in (3, 13) or getattr(exc, "code", None) in (3, 13)  # NOT_SUPPORTED, FUNCTION_NOT_FOUND


def _instant_field_mw(pynvml: Any, handle: Any) -> float | None:
    """The instant power field (mW), or None where NVML does not give it for this GPU. Raises other NVML errors."""
    field = nvml.FI_DEV_POWER_INSTANT
    try:
        values = pynvml.nvmlDeviceGetFieldValues(handle, [field])
    except pynvml.NVMLError as exc:
        if _not_supported(exc):
            return None
        raise
    except AttributeError:  # a pynvml without nvmlDeviceGetFieldValues
        return None
    return nvml.field_value(values[0])


def _changes(reads: list[tuple[float, Any]]) -> dict[str, Any]:
    """How often a reading changed among back-to-back ``reads`` ((monotonic s, value)): the intervals (s) between
    the reads where it took a new value, as median and 10th/90th percentiles."""
    times = [t for (_, before), (t, v) in itertools.pairwise(reads) if v != before]
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    out: dict[str, Any] = {"reads": len(reads), "changes": len(times)}
    if len(gaps) >= 3:
        out.update(median_update_s=_r(gaps[len(gaps) // 2], 4), p10_update_s=_r(gaps[len(gaps) // 10], 4),
                   p90_update_s=_r(gaps[(9 * len(gaps)) // 10], 4))
    return out


def _sensor_updates(pynvml: Any, gpu: _Gpu, seconds: float) -> dict[str, Any]:
    """How often the GPU's power readings change, from back-to-back reads for ``seconds`` (under load they change
    at every sensor update): ``nvmlDeviceGetPowerUsage``, the instant field and whether the field's own timestamp
    marks the sensor's update (it changes only with the value) or the query (it changes at every read), and what
    the driver's own buffer of power samples (``nvmlDeviceGetSamples``, NVML_TOTAL_POWER_SAMPLES) holds. The meter's
    rate bound (``meter_power_period_s``) and any sampling estimator are to be checked against these."""
    h = gpu.handle
    field = nvml.FI_DEV_POWER_INSTANT
    power: list[tuple[float, Any]] = []
    instant: list[tuple[float, Any]] = []
    stamps: list[tuple[float, Any]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        with contextlib.suppress(pynvml.NVMLError):
            power.append((t, pynvml.nvmlDeviceGetPowerUsage(h)))
        if gpu.instant:
            with contextlib.suppress(pynvml.NVMLError):
                v = pynvml.nvmlDeviceGetFieldValues(h, [field])[0]
                if v.nvmlReturn == 0:
                    instant.append((t, nvml.field_value(v)))
                    stamps.append((t, v.timestamp))
        time.sleep(0.0005)
    out: dict[str, Any] = {"seconds": seconds, "power_usage": _changes(power)}
    if gpu.instant:
        out["instant_field"] = _changes(instant)
        stamp_changes = _changes(stamps)["changes"]
        value_changes = out["instant_field"]["changes"]
        out["instant_field"]["timestamp"] = (
            "marks the query" if stamp_changes >= 0.9 * max(len(stamps) - 1, 1) else
            "marks the sensor's update" if stamp_changes <= 1.5 * max(value_changes, 1) else "unclear")
    try:
        _, samples = pynvml.nvmlDeviceGetSamples(h, getattr(pynvml, "NVML_TOTAL_POWER_SAMPLES", 0), 0)
        stamps_us = sorted(int(x.timeStamp) for x in samples)
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps_us))
        out["driver_samples"] = {"supported": True, "count": len(samples),
                                 "span_s": _r((stamps_us[-1] - stamps_us[0]) / 1e6, 4) if stamps_us else None,
                                 "median_interval_s": _r(gaps[len(gaps) // 2] / 1e6, 4) if gaps else None}
    except (pynvml.NVMLError, AttributeError) as exc:
        out["driver_samples"] = {"supported": False, "error": str(exc)}
    return out


class _Gpu:
    """One physical GPU as the check sees it (NVML index order)."""

    def __init__(self, pynvml: Any, index: int) -> None:
        self.index = index
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.uuid: str = _nvml_text(pynvml.nvmlDeviceGetUUID, self.handle)
        self.name: str = _nvml_text(pynvml.nvmlDeviceGetName, self.handle)
        self.counter = False
        self.instant = False
        self.power = False
        self.mig_enabled = False
        self.mig_devices: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    def describe(self, pynvml: Any) -> dict[str, Any]:
        h = self.handle
        pci = _nvml_text(pynvml.nvmlDeviceGetPciInfo, h)
        limit = _nvml_text(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
        cc = _nvml_text(pynvml.nvmlDeviceGetCudaComputeCapability, h)
        memory = _nvml_text(pynvml.nvmlDeviceGetMemoryInfo, h)
        bus = getattr(pci, "busId", pci)
        supports: dict[str, Any] = {}
        try:
            self.counter = nvml.energy_mj(h) is not None
            supports["energy_counter"] = self.counter
        except nvml.NvmlError as exc:
            supports["energy_counter"] = False
            supports["energy_counter_error"] = str(exc)
        try:
            nvml.power_mw(h)
            self.power = True
        except nvml.NvmlError as exc:
            supports["power_usage_error"] = str(exc)
        supports["power_usage"] = self.power
        try:
            self.instant = _instant_field_mw(pynvml, h) is not None
            supports["instant_power_field"] = self.instant
        except pynvml.NVMLError as exc:
            supports["instant_power_field"] = False
            supports["instant_power_field_error"] = str(exc)
        try:  # what the meter's sampling thread reads on this GPU
            capability = (int(cc[0]), int(cc[1])) if isinstance(cc, tuple) else (0, 0)
            sensor = nvml.PowerSensor(nvml.Gpu(self.index, self.uuid, self.name, h, compute_capability=capability))
            supports["meter_power_source"], supports["meter_power_period_s"] = sensor.source, sensor.period_s
        except nvml.NvmlError as exc:
            supports["meter_power_source"] = f"error: {exc}"
        supports["mig"] = self._mig(pynvml)
        try:
            supports["process_utilization"] = "supported" if nvml.process_utilization(h) else "no samples"
        except nvml.NvmlError as exc:
            supports["process_utilization"] = "not supported" if exc.not_supported else f"error: {exc}"
        self.info = {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "pci": bus.decode() if isinstance(bus, bytes) else bus,
            "compute_capability": f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple) else cc,
            "memory_mib": memory.total >> 20 if hasattr(memory, "total") else memory,
            "power_limit_w": limit / 1000.0 if isinstance(limit, int) else limit,
            "supports": supports,
        }
        return self.info

    def _mig(self, pynvml: Any) -> dict[str, Any]:
        try:
            current, pending = pynvml.nvmlDeviceGetMigMode(self.handle)
        except pynvml.NVMLError as exc:
            return {"mode": "not supported" if _not_supported(exc) else f"error: {exc}", "devices": []}
        self.mig_enabled = bool(current)
        out: dict[str, Any] = {"mode": "enabled" if current else "disabled", "pending": "enabled" if pending else "disabled"}
        if current:
            try:
                slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(self.handle)
            except pynvml.NVMLError as exc:
                slots = 0
                out["error"] = str(exc)
            for slot in range(slots):
                try:
                    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(self.handle, slot)
                except pynvml.NVMLError:
                    continue  # an empty slot
                device: dict[str, Any] = {"slot": slot, "uuid": _nvml_text(pynvml.nvmlDeviceGetUUID, mig),
                                          "name": _nvml_text(pynvml.nvmlDeviceGetName, mig)}
                attributes = _nvml_text(pynvml.nvmlDeviceGetAttributes_v2, mig)
                device["gpu_instance_slices"] = getattr(attributes, "gpuInstanceSliceCount", None)
                self.mig_devices.append(device)
        out["devices"] = self.mig_devices
        return out


def _machine(pynvml: Any | None, nvml_error: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "airflow_carbon": __version__,
    }
    try:
        from importlib.metadata import version

        out["nvidia_ml_py"] = version("nvidia-ml-py")
    except Exception:
        out["nvidia_ml_py"] = None
    if pynvml is None:
        out["nvml_error"] = nvml_error
        return out
    out["driver_version"] = _nvml_text(pynvml.nvmlSystemGetDriverVersion)
    out["nvml_version"] = _nvml_text(pynvml.nvmlSystemGetNVMLVersion)
    cuda = _nvml_text(pynvml.nvmlSystemGetCudaDriverVersion)
    out["cuda_driver_version"] = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else cuda
    return out


# -- observers ---------------------------------------------------------------------------------------
class _Observer:
    """Reads every GPU's counter (mJ), power (W) and instant power field (W) every ``interval_s`` on a thread."""

    def __init__(self, pynvml: Any, gpus: list[_Gpu], interval_s: float) -> None:
        self.pynvml, self.gpus, self.interval_s = pynvml, gpus, interval_s
        self.counter: dict[int, Series] = {g.index: [] for g in gpus}
        self.power: dict[int, Series] = {g.index: [] for g in gpus}
        self.instant: dict[int, Series] = {g.index: [] for g in gpus}
        self.errors: dict[str, str] = {}
        self._off: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-check-observer", daemon=True)

    def _read(self, gpu: _Gpu, what: str, series: Series, fn: Callable[[], float | None]) -> None:
        if (gpu.index, what) in self._off:
            return
        t0 = time.monotonic()
        try:
            value = fn()
        except Exception as exc:
            self._off.add((gpu.index, what))
            self.errors[f"GPU {gpu.index} {what}"] = str(exc)
            return
        if value is not None:
            series.append(((t0 + time.monotonic()) / 2.0, value))

    def tick(self) -> None:
        for g in self.gpus:
            if g.counter:
                self._read(g, "counter", self.counter[g.index], lambda g=g: nvml.energy_mj(g.handle))
            if g.power:
                self._read(g, "power", self.power[g.index], lambda g=g: nvml.power_mw(g.handle) / 1000.0)
            if g.instant:
                def instant(g: _Gpu = g) -> float | None:
                    mw = _instant_field_mw(self.pynvml, g.handle)
                    return None if mw is None else mw / 1000.0

                self._read(g, "instant", self.instant[g.index], instant)

    def _run(self) -> None:
        next_t = time.monotonic()
        while True:
            next_t += self.interval_s
            if self._stop.wait(max(0.0, next_t - time.monotonic())):
                return
            self.tick()

    def start(self) -> None:
        self.tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()

    def __enter__(self) -> _Observer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SmiPoller:
    """Polls ``nvidia-smi --query-gpu=index,power.draw`` every ``interval_s`` on a thread: (time, W) per index."""

    def __init__(self, path: str, interval_s: float = SMI_INTERVAL_S) -> None:
        self.path, self.interval_s = path, interval_s
        self.samples: dict[int, Series] = {}
        self.polls = 0
        self.failures = 0
        self.last_error: str | None = None
        self.call_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-check-nvidia-smi", daemon=True)

    def poll(self) -> None:
        t0 = time.monotonic()
        try:
            out = subprocess.run([self.path, *_SMI_QUERY], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return
        t1 = time.monotonic()
        self.polls += 1
        self.call_s.append(t1 - t0)
        if out.returncode != 0:
            self.failures += 1
            self.last_error = f"exit {out.returncode}: {(out.stdout + out.stderr).strip()[:300]}"
            return
        for line in out.stdout.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2:
                continue
            try:
                index, watts = int(parts[0]), float(parts[1])
            except ValueError:  # "[N/A]", "[Not Supported]"
                continue
            self.samples.setdefault(index, []).append(((t0 + t1) / 2.0, watts))

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.poll()
            next_t += self.interval_s
            if self._stop.wait(max(0.0, next_t - time.monotonic())):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- worker processes (the torch load, and the shared-GPU windows) -----------------------------------
def _torch_load() -> tuple[Callable[[float], dict[str, Any]] | None, dict[str, Any]]:
    """Prepare a matmul load on cuda:0: (run(seconds) -> figures, torch facts); run is None where torch or
    CUDA is unusable (the facts say why)."""
    try:
        import torch  # type: ignore[import-not-found]
    except Exception as exc:
        return None, {"importable": False, "error": f"{type(exc).__name__}: {exc}"}
    info: dict[str, Any] = {"importable": True, "version": str(torch.__version__), "cuda": torch.version.cuda}
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        if not info["cuda_available"]:
            return None, info
        device = torch.device("cuda", 0)
        info["device"] = torch.cuda.get_device_name(device)
        n = 8192
        dtype = torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16  # bf16 natively: Ampere on
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        for _ in range(3):  # cuBLAS initialisation, clocks up
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize(device)
        batch = max(1, int(0.1 / max((time.perf_counter() - t0) / 5, 1e-6)))  # about 0.1 s between synchronisations
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
        return None, info

    def run(seconds: float) -> dict[str, Any]:
        t0 = time.monotonic()
        end, matmuls = t0 + seconds, 0
        while time.monotonic() < end:
            for _ in range(batch):
                torch.matmul(a, b, out=c)
            torch.cuda.synchronize(device)
            matmuls += batch
        elapsed = time.monotonic() - t0
        return {"matmuls": matmuls, "n": n, "dtype": str(dtype).replace("torch.", ""),
                "tflops": round(2.0 * n**3 * matmuls / elapsed / 1e12, 1)}

    return run, info


def _worker() -> None:
    """A worker process (``python -c``; argv[1]: JSON {"torch": bool, "state_dir": DIR or null}): prepares its
    load, prints {"ready": ...}, waits for a line {"seconds": S} on stdin, runs the load for S s (inside an
    EnergyMeter window where state_dir is given: CUDA_VISIBLE_DEVICES picks its GPU) and prints {"done": ...}."""
    spec = json.loads(sys.argv[1])
    load, info = _torch_load() if spec.get("torch") else (None, None)
    print(json.dumps({"ready": True, "torch": info, "pid": os.getpid()}), flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return
    seconds = float(json.loads(line)["seconds"])
    meter = EnergyMeter(g_per_kwh=_G_PER_KWH, state_dir=spec["state_dir"]) if spec.get("state_dir") else None
    out: dict[str, Any] = {"done": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the record's warnings say the same
        if meter is not None:
            meter.start()
        out["t_open"] = time.monotonic()
        out["load"] = load(seconds) if load is not None else {"slept_s": seconds}
        if load is None:
            time.sleep(seconds)
        out["t_close"] = time.monotonic()
        if meter is not None:
            out["record"] = meter.stop()
    print(json.dumps(out), flush=True)


class _Worker:
    def __init__(self, spec: dict[str, Any], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, json.dumps(spec)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, put: Callable[[Any], None]) -> None:
        for line in stream:
            put(line)
        put(None)

    def message(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the worker process gave no answer within {timeout:.0f} s") from None
            if line is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
                tail = "".join(s for s in self._stderr if s)[-1500:].strip()
                raise RuntimeError(f"the worker process ended (exit {self.proc.returncode}): {tail or 'no output'}")
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    return message
            # other lines (a library's chatter on stdout) are skipped

    def go(self, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"seconds": seconds}) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the check ---------------------------------------------------------------------------------------
class _Check:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.t_start = time.monotonic()
        self.findings: list[tuple[str, str]] = []  # (ok | note | FAIL, text)
        self.pynvml: Any = None
        self.gpus: list[_Gpu] = []
        self.state_dir = tempfile.mkdtemp(prefix="airflow-carbon-gpu-check-")  # our windows' registry, ours alone
        self.smi = shutil.which("nvidia-smi")
        self.torch_ok = False  # torch ran the load: the shared windows run it too
        self.torch_info: dict[str, Any] | None = None
        self.torch_figures: dict[str, Any] | None = None  # what the torch load did (matmuls, TFLOP/s)
        self.interval_s = SAMPLE_INTERVAL_S
        self.updates: dict[str, Any] | None = None  # how often the target GPU's power readings change (_sensor_updates)

    # findings
    def ok(self, text: str) -> None:
        self.findings.append(("ok", text))

    def note(self, text: str) -> None:
        self.findings.append(("note", text))

    def fail(self, text: str) -> None:
        self.findings.append(("FAIL", text))

    def time_left(self) -> float:
        return BUDGET_S - (time.monotonic() - self.t_start)

    @property
    def target(self) -> _Gpu | None:
        """The GPU the load and the windows use: the first not in MIG mode (CUDA cannot use such a GPU whole)."""
        return next((g for g in self.gpus if not g.mig_enabled), None)

    def worker_env(self, gpu: _Gpu) -> dict[str, str]:
        return {**os.environ, "CUDA_VISIBLE_DEVICES": gpu.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

    def reference(self, observer: _Observer, index: int, a: float, b: float) -> tuple[float | None, str]:
        """The energy (J) of GPU ``index`` over [a, b]: the counter's, else our sampled power's."""
        if observer.counter[index]:
            return _counter_j(observer.counter[index], a, b), "counter"
        return _integral_j(observer.power[index], a, b), "sampled"

    # sections
    def inventory(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(self.pynvml.nvmlDeviceGetCount()):
            try:
                gpu = _Gpu(self.pynvml, i)
            except self.pynvml.NVMLError as exc:  # no permission (a container), lost: listed, and left out of the checks
                out.append({"index": i, "error": str(exc)})
                self.fail(f"GPU {i}: NVML cannot open it ({exc}): it was left out of the checks")
                continue
            self.gpus.append(gpu)
            out.append(gpu.describe(self.pynvml))
        if len(self.gpus) > 4:
            self.interval_s = 0.1
        if not self.gpus:
            self.fail("NVML sees no GPU")
        for g in self.gpus:
            s = g.info["supports"]
            if not g.counter:
                self.note(f"GPU {g.index} ({g.name}) has no energy counter (pre-Volta, or not supported by this driver): "
                          "airflow-carbon integrates its sampled power instead")
            if not g.power:
                self.fail(f"GPU {g.index} ({g.name}): NVML gives no power reading ({s.get('power_usage_error')})")
            if not g.instant:
                average = ", a 1 s average on this GPU (peak power is a peak of 1 s averages)"
                self.note(f"GPU {g.index}: NVML has no instant power field (NVML_FI_DEV_POWER_INSTANT) on it: the meter samples "
                          "nvmlDeviceGetPowerUsage" + (average if s.get("meter_power_source") == "average" else ""))
            if s["process_utilization"] == "not supported":
                self.note(f"GPU {g.index}: no per-process utilisation: windows sharing it are split equally")
        return out

    def load(self) -> dict[str, Any]:
        target = self.target
        worker = None
        if importlib.util.find_spec("torch") is None:
            self.torch_info = {"importable": False}
            self.note("torch is not importable: the load phase is idle" + (", then observed with nvidia-smi" if self.smi else ""))
        elif target is None:
            self.torch_info = {"importable": True, "not_run": "every GPU is in MIG mode"}
            self.note("every GPU is in MIG mode: no torch load (CUDA cannot use a MIG-mode GPU whole); the load phase is idle")
        else:
            worker = _Worker({"torch": True}, self.worker_env(target))
            try:
                ready = worker.message(READY_TIMEOUT_S)
                self.torch_info = ready.get("torch") or {}
            except (TimeoutError, RuntimeError) as exc:
                self.torch_info = {"importable": True, "error": str(exc)}
            self.torch_ok = bool(self.torch_info.get("cuda_available")) and "error" not in self.torch_info
            if not self.torch_ok:
                worker.close()
                worker = None
                why = self.torch_info.get("error") or "CUDA is not available to it"
                self.note(f"torch is importable but could not load the GPU ({why}): the load phase is idle")
        observer = _Observer(self.pynvml, self.gpus, self.interval_s)
        smi = _SmiPoller(self.smi) if self.smi else None
        if not self.smi:
            self.note("nvidia-smi not found on PATH: its power.draw was not compared")
        meter = EnergyMeter(g_per_kwh=_G_PER_KWH, cuda_visible_devices=",".join(g.uuid for g in self.gpus), state_dir=self.state_dir)
        phases: list[tuple[str, float, float, bool]] = []  # (name, start, end, nvidia-smi polled)
        with observer, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meter.start()
            m0 = time.monotonic()
            try:
                ran = self._run_load(worker, smi, phases)
            finally:
                m1 = time.monotonic()
                record = meter.stop()
        out: dict[str, Any] = {
            "ran": ran,
            "torch": self.torch_figures,
            "sampling": {"interval_s": self.interval_s, "reads": {str(i): len(v) for i, v in observer.power.items()}},
            "nvidia_smi": None if smi is None else {
                "path": self.smi, "polls": smi.polls, "failures": smi.failures, "last_error": smi.last_error,
                "median_call_s": _r(sorted(smi.call_s)[len(smi.call_s) // 2] if smi.call_s else None),
            },
            "observer_errors": observer.errors,
            "sensor_updates": self.updates,
            "phases": [self.phase(observer, smi if polled else None, name, a, b) for name, a, b, polled in phases],
            "energy_meter": self.meter_vs_counter(observer, record, m0, m1),
        }
        if smi is not None and smi.polls == 0:
            self.note(f"nvidia-smi was found but no poll succeeded ({smi.last_error})")
        self.judge_phases(out["phases"])
        return out

    def _run_load(self, worker: _Worker | None, smi: _SmiPoller | None, phases: list[tuple[str, float, float, bool]]) -> str:
        """Run the load phase(s), appending (name, start, end, nvidia-smi polled) to ``phases``; what ran, in words."""
        s = self.seconds
        if worker is not None:
            target = self.target
            assert target is not None
            if smi:
                smi.start()
            try:
                worker.go(s)
                time.sleep(min(2.0, s / 4))  # into the load, then read the sensors back to back
                self.updates = _sensor_updates(self.pynvml, target, min(UPDATES_PROBE_S, s / 4))
                done = worker.message(s + 60)
                self.torch_figures = done["load"]
                phases.append(("torch matmul", done["t_open"], done["t_close"], smi is not None))
            finally:
                if smi:
                    smi.stop()
                worker.close()
            return f"torch matmul on cuda:0 (GPU {target.index}, {target.name}) for {s:g} s"
        a = time.monotonic()
        if self.gpus:  # idle: a reading may not change at all (said so in the probe's counts)
            self.updates = _sensor_updates(self.pynvml, self.target or self.gpus[0], min(UPDATES_PROBE_S, s / 4))
        time.sleep(max(0.0, s - (time.monotonic() - a)))
        phases.append(("idle", a, time.monotonic(), False))
        if smi:
            smi.start()
            a = time.monotonic()
            time.sleep(s)
            b = time.monotonic()
            smi.stop()
            phases.append(("nvidia-smi observed", a, b, True))
            ran = f"no torch: idle {s:g} s, then {s:g} s observed with nvidia-smi"
        else:
            ran = f"no torch: idle {s:g} s (nvidia-smi not found: no second phase)"
        if self.torch_info and self.torch_info.get("importable"):
            ran = ran.replace("no torch", "torch could not load the GPU")
        return ran

    def phase(self, observer: _Observer, smi: _SmiPoller | None, name: str, a: float, b: float) -> dict[str, Any]:
        gpus = []
        for g in self.gpus:
            i = g.index
            counter = _counter_j(observer.counter[i], a, b) if g.counter else None
            sampled = _integral_j(observer.power[i], a, b)
            instant = _integral_j(observer.instant[i], a, b) if g.instant else None
            entry: dict[str, Any] = {
                "index": i,
                "counter_j": _r(counter),
                "sampled_j": _r(sampled),
                "instant_j": _r(instant),
                "mean_power_w": {"counter": _r(counter / (b - a)) if counter is not None else None,
                                 "sampled": _r(sampled / (b - a)) if sampled is not None else None,
                                 "instant": _r(instant / (b - a)) if instant is not None else None},
                "ratios": {"sampled_over_counter": _ratio(sampled, counter), "instant_over_counter": _ratio(instant, counter)},
            }
            if smi is not None:
                series = [(t, w) for t, w in smi.samples.get(i, []) if a <= t <= b]
                entry["nvidia_smi"] = None
                if len(series) >= 2:
                    s0, s1 = series[0][0], series[-1][0]
                    smi_j = _integral_j(series, s0, s1)
                    ref, ref_name = self.reference(observer, i, s0, s1)
                    entry["nvidia_smi"] = {"polls": len(series), "span_s": _r(s1 - s0), "energy_j": _r(smi_j),
                                           "mean_power_w": _r(smi_j / (s1 - s0)) if smi_j is not None else None,
                                           "reference": ref_name, "reference_j": _r(ref)}
                    entry["ratios"][f"smi_over_{ref_name}"] = _ratio(smi_j, ref)
            gpus.append(entry)
        return {"name": name, "duration_s": _r(b - a), "nvidia_smi_polled": smi is not None, "gpus": gpus}

    def judge_phases(self, phases: list[dict[str, Any]]) -> None:
        for key, what in (("sampled_over_counter", "the counter and our sampled power (nvmlDeviceGetPowerUsage)"),
                          ("instant_over_counter", "the counter and the instant power field"),
                          ("smi_over_counter", "nvidia-smi's power.draw and the counter"),
                          ("smi_over_sampled", "nvidia-smi's power.draw and our sampled power (no counter)")):
            ratios = [(g["ratios"][key], f"GPU {g['index']}, {p['name']}") for p in phases for g in p["gpus"]
                      if g["ratios"].get(key) is not None]
            if not ratios:
                continue
            worst, where = max(ratios, key=lambda r: abs(r[0] - 1))
            if abs(worst - 1) <= AGREE:
                self.ok(f"{what} agree within {_pct(worst)} (worst: {where})")
            else:
                off = [f"{w}: {r:.3f}x" for r, w in ratios if abs(r - 1) > AGREE]
                self.note(f"{what} differ by more than {AGREE:.0%}: " + "; ".join(off))

    def meter_vs_counter(self, observer: _Observer, record: dict[str, Any], a: float, b: float) -> dict[str, Any]:
        gpus = []
        for entry in record["gpus"]:
            ref, ref_name = self.reference(observer, entry["index"], a, b)
            ratio = _ratio(entry["energy_j"], ref)
            gpus.append({"index": entry["index"], "uuid": entry["uuid"], "energy_j": _r(entry["energy_j"]), "method": entry["method"],
                         "attribution": entry.get("attribution"), "reference": ref_name, "reference_j": _r(ref), "ratio": ratio})
            label = f"GPU {entry['index']}"
            if ratio is None:
                self.fail(f"EnergyMeter's window: {label} has no energy to compare ({entry['method']}, {ref_name} {ref})")
            elif abs(ratio - 1) <= AGREE:
                self.ok(f"EnergyMeter's window: {label}'s energy ({entry['method']}) matches our {ref_name} within {_pct(ratio)}")
            else:
                self.fail(f"EnergyMeter's window: {label}'s energy ({entry['method']}) is {ratio:.3f}x our {ref_name}'s")
        missing = {g.index for g in self.gpus} - {e["index"] for e in record["gpus"]}
        if missing:
            self.fail(f"EnergyMeter's window measured no entry for GPU(s) {sorted(missing)}")
        return {"window_s": _r(b - a), "gpus": gpus, "warnings": record["warnings"]}

    def _window(self, visible: str) -> dict[str, Any]:
        meter = EnergyMeter(g_per_kwh=_G_PER_KWH, cuda_visible_devices=visible, state_dir=self.state_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meter.start()
            time.sleep(min(PROBE_WINDOW_S, self.seconds))
            return meter.stop()

    def cuda_visible_devices(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        target = self.target or (self.gpus[0] if self.gpus else None)
        if target is None:
            return {"gpu": {"status": "skipped: no GPU"}, "mig": {"status": "skipped: no GPU"}}
        record = self._window(target.uuid)
        entries = record["gpus"]
        passed = len(entries) == 1 and entries[0]["uuid"] == target.uuid and entries[0]["energy_j"] is not None
        out["gpu"] = {"cuda_visible_devices": target.uuid, "status": "pass" if passed else "fail",
                      "record_gpus": [_brief(e) for e in entries], "warnings": record["warnings"]}
        (self.ok if passed else self.fail)(
            f"CUDA_VISIBLE_DEVICES={target.uuid}: the window's record "
            + (f"names that GPU (index {target.index}) and only it" if passed else f"has {[e['uuid'] for e in entries]}"))
        parent = next((g for g in self.gpus if g.mig_devices), None)
        if parent is None:
            out["mig"] = {"status": "skipped: no MIG device"}
            return out
        device = parent.mig_devices[0]
        slices = [d["gpu_instance_slices"] for d in parent.mig_devices]
        expected = device["gpu_instance_slices"] / sum(slices) if all(isinstance(x, int) and x > 0 for x in slices) else None
        record = self._window(device["uuid"])
        entries = record["gpus"]
        e = entries[0] if len(entries) == 1 else None
        passed = (e is not None and e["uuid"] == parent.uuid and e.get("attribution") == "mig-allocation"
                  and device["uuid"] in e.get("mig_devices", [])
                  and (expected is None or abs((e.get("share") or 0) - expected) < 1e-6))
        out["mig"] = {"cuda_visible_devices": device["uuid"], "parent": {"index": parent.index, "uuid": parent.uuid},
                      "expected_share": _r(expected, 6), "status": "pass" if passed else "fail",
                      "record_gpus": [_brief(x) for x in entries], "warnings": record["warnings"]}
        share = f", share {e.get('share'):.3g}" if e is not None and e.get("share") is not None else ""
        (self.ok if passed else self.fail)(
            f"CUDA_VISIBLE_DEVICES={device['uuid']} (a MIG device of GPU {parent.index}): the record "
            + (f"names its parent GPU, attribution mig-allocation{share}" if passed else f"is {[_brief(x) for x in entries]}"))
        return out

    def shared_gpu(self) -> dict[str, Any]:
        target = self.target
        if target is None:
            return {"status": "skipped: every GPU is in MIG mode"}
        window = max(1.0, self.seconds / 2)
        offset = window / 2
        if self.time_left() < window + offset + READY_TIMEOUT_S * (1 if self.torch_ok else 0.2):
            self.note("the shared-GPU check was skipped: it would not finish within the 5-minute budget")
            return {"status": "skipped: out of time"}
        env = self.worker_env(target)
        spec = {"torch": self.torch_ok, "state_dir": os.path.join(self.state_dir, "shared")}  # only these two windows
        workers = [_Worker(spec, env), _Worker(spec, env)]
        observer = _Observer(self.pynvml, [target], self.interval_s)
        try:
            for w in workers:
                w.message(READY_TIMEOUT_S)
            with observer:
                workers[0].go(window)
                time.sleep(offset)
                workers[1].go(window)
                done = [w.message(window + 120) for w in workers]
        finally:
            for w in workers:
                w.close()
        u0 = min(d["t_open"] for d in done)
        u1 = max(d["t_close"] for d in done)
        device_j, ref_name = self.reference(observer, target.index, u0, u1)
        windows = []
        for name, d in zip("AB", done, strict=True):
            entry = next((e for e in d["record"]["gpus"] if e["uuid"] == target.uuid), None)
            windows.append({
                "name": name, "start_s": _r(d["t_open"] - u0), "end_s": _r(d["t_close"] - u0),
                "load": d["load"],
                "energy_j": _r(entry["energy_j"]) if entry else None,
                "device_energy_j": _r(entry.get("device_energy_j")) if entry else None,
                "attribution": entry.get("attribution") if entry else None,
                "share": _r(entry.get("share"), 4) if entry else None,
                "concurrent_windows": entry.get("concurrent_windows") if entry else None,
                "warnings": d["record"]["warnings"],
            })
        total = None if any(w["energy_j"] is None for w in windows) else sum(w["energy_j"] for w in windows)
        ratio = _ratio(total, device_j)
        passed = ratio is not None and abs(ratio - 1) <= SHARED_TOLERANCE
        overlap = max(0.0, min(d["t_close"] for d in done) - max(d["t_open"] for d in done))
        out = {"gpu": target.index, "uuid": target.uuid, "load": "torch matmul" if self.torch_ok else "sleep",
               "union_s": _r(u1 - u0), "overlap_s": _r(overlap), "windows": windows, "sum_j": _r(total),
               "device_j": _r(device_j), "device_reference": ref_name, "sum_over_device": ratio,
               "status": "pass" if passed else "fail"}
        how = " and ".join(sorted({str(w["attribution"]) for w in windows}))
        if passed:
            self.ok(f"shared GPU {target.index}: two concurrent windows ({how}) add up to what the device drew within "
                    f"{_pct(ratio or 1)} ({ref_name}, {u1 - u0:.1f} s, {overlap:.1f} s overlap)")
        else:
            self.fail(f"shared GPU {target.index}: two concurrent windows ({how}) add up to {ratio}x what the device drew "
                      f"({ref_name}); another process on the GPU, or a broken split")
        return out


def _brief(entry: dict[str, Any]) -> dict[str, Any]:
    keys = ("index", "uuid", "energy_j", "method", "attribution", "share", "device_energy_j", "mig_devices")
    return {k: round(entry[k], 6) if isinstance(entry.get(k), float) else entry[k] for k in keys if k in entry}


def _section(check: _Check, report: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    """Run one section; an exception is put in the report (and a FAIL), never lost with the rest of it."""
    try:
        report[name] = fn()
    except Exception as exc:
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        check.fail(f"the {name} section failed: {type(exc).__name__}: {exc}")


def run(out_path: str | os.PathLike[str] = DEFAULT_OUT, seconds: float = DEFAULT_SECONDS) -> dict[str, Any]:
    """Run the check, write its JSON report to ``out_path`` and return it."""
    check = _Check(seconds)
    report: dict[str, Any] = {"schema": "airflow-carbon gpu-check 1", "seconds": seconds}
    try:
        check.pynvml = nvml.init()
        nvml_error = None
    except nvml.NvmlError as exc:
        nvml_error = str(exc)
        check.fail(str(exc) if str(exc).startswith("NVML is not available") else f"NVML is not available: {exc}")
    report["machine"] = _machine(check.pynvml, nvml_error)
    if check.pynvml is not None:
        _section(check, report, "gpus", check.inventory)
    if check.gpus:
        _section(check, report, "load", check.load)
        _section(check, report, "cuda_visible_devices", check.cuda_visible_devices)
        _section(check, report, "shared_gpu", check.shared_gpu)
    report["machine"]["torch"] = check.torch_info or {"importable": importlib.util.find_spec("torch") is not None}
    report["duration_s"] = round(time.monotonic() - check.t_start, 1)
    if report["duration_s"] > BUDGET_S:
        check.fail(f"the check took {report['duration_s']:.0f} s, over the {BUDGET_S:.0f} s budget")
    report["verdict"] = [f"{level}: {text}" for level, text in check.findings]
    report["passed"] = not any(level == "FAIL" for level, _ in check.findings)
    shutil.rmtree(check.state_dir, ignore_errors=True)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def summary(report: dict[str, Any], out_path: str | os.PathLike[str]) -> str:
    """The report in a few lines, for people."""
    m = report["machine"]
    gpus = report.get("gpus") if isinstance(report.get("gpus"), list) else []
    lines = [f"airflow-carbon gpu-check: {len(gpus)} GPU(s) on {m['hostname']}, driver {m.get('driver_version', '-')}, "
             f"CUDA {m.get('cuda_driver_version', '-')}, {report['duration_s']:.0f} s"]
    for g in gpus:
        if "supports" not in g:
            lines.append(f"  GPU {g['index']}: {g.get('error')}")
            continue
        s = g["supports"]
        mig = s["mig"]
        mig_text = f"MIG {mig['mode']}" + (f" ({len(mig['devices'])} devices)" if mig.get("devices") else "")
        lines.append(f"  GPU {g['index']} {g['name']}: counter {'yes' if s['energy_counter'] else 'no'}, instant power field "
                     f"{'yes' if s['instant_power_field'] else 'no'}, {mig_text}, per-process utilisation {s['process_utilization']}")
    load = report.get("load")
    if isinstance(load, dict) and "ran" in load:
        lines.append(f"  load: {load['ran']}")
    lines += [f"  {v}" for v in report["verdict"]]
    lines.append(f"{'passed' if report['passed'] else 'FAILED'}; report: {out_path}")
    return "\n".join(lines)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1.0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: 1 to {MAX_SECONDS:g} s (the check must finish in under 5 minutes)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``airflow-carbon gpu-check`` (also this module's own ``main``)."""
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="PATH", help=f"where to write the JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--seconds", type=_seconds, default=DEFAULT_SECONDS, metavar="S",
                        help=f"length of the load phase, 1 to {MAX_SECONDS:g} s (default {DEFAULT_SECONDS:g}; "
                        "the whole check takes about 3 times this, plus start-up)")


def command(args: argparse.Namespace) -> int:
    """Run the check for parsed arguments; 0 when every check passed, 1 otherwise."""
    report = run(args.out, args.seconds)
    print(summary(report, args.out))
    return 0 if report["passed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-carbon gpu-check", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
