"""GPU energy over one window: NVML's total-energy counter where the GPU has one, sampled power otherwise.

Power is sampled on every GPU in any case (for mean and peak power, and as the fallback when the counter
is missing, goes backwards after a driver reload, or the GPU is lost mid-window), all GPUs in one pass per
tick: NVML's instant power field where the GPU gives it, else ``nvmlDeviceGetPowerUsage`` (a 1 s average on
Ampere and newer), through buffers allocated once (:class:`~airflow_carbon.core.nvml.PowerSensor`). Sampled
energy is the trapezoidal integral of the samples, including one taken synchronously at the window's start
and end, kept as a running sum (no list of samples: they come up to 50 times a second, for days).
NVML's utilisation (% of time a kernel ran) is sampled at the host rate (1 Hz) and once at the window's
end, and averaged (the utilisation CodeCarbon reports).

A GPU that other measured windows use at the same time is shared (:mod:`airflow_carbon.core.sharing`): at
every host sample (1 Hz) and at the end, the energy of the interval since the last one is multiplied by this
window's share of the GPU for that interval (per-process utilisation where NVML reports it, else an equal
split among the windows open on it). The entry keeps the device's figure (``device_energy_j``) beside the
window's (``energy_j``), its mean ``share`` and the ``attribution``; a window alone on its GPU keeps the
device's figure exactly (``exclusive``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from airflow_carbon.core import nvml
from airflow_carbon.core.processes import descendants
from airflow_carbon.core.record import GpuEntry
from airflow_carbon.core.sharing import WindowRegistry, equal_share, utilization_share
from airflow_carbon.core.units import mj_to_j, mw_to_w

_FAST_CHANGE_FRACTION = 0.10
_FAST_CHANGE_MIN_W = 5.0


@dataclass
class _Track:
    gpu: nvml.Gpu
    sensor: nvml.PowerSensor | None = None
    start_mj: int | None = None
    end_mj: int | None = None
    # power samples, integrated as they come: how many, the first and last (monotonic s, W), the peak (W)
    samples: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    last_w: float = 0.0
    peak_w: float | None = None
    sampled_j: float = 0.0  # J: trapezoidal integral of the samples so far
    lost_at: float | None = None  # monotonic s when NVML lost the GPU
    error: str | None = None
    util_sum_percent: int = 0  # running sum and count of NVML utilisation samples (no list: sampled at 1 Hz for days)
    util_samples: int = 0
    util_error: str | None = None  # why utilisation stopped being sampled (None: not supported, or fine)
    util_off: bool = False
    # sharing: the device's energy since the last host sample is split by this window's share of it
    tick_t: float = 0.0  # monotonic s of the last host sample (the start of the interval not yet split)
    tick_mj: int | None = None  # the counter there, mJ
    tick_sampled_j: float = 0.0  # sampled_j at the last host sample
    share: float = 1.0  # this window's share of the GPU in the last interval
    attributed_counter_j: float = 0.0  # J: this window's part so far, from the counter and from sampled power
    attributed_sampled_j: float = 0.0
    most_windows: int = 1
    by_utilization: bool = False
    proc_ts: int = 0  # NVML's timestamp (us) of the last per-process utilisation sample read
    proc_util_off: bool = False
    mig: tuple[float, str] | None = None  # a MIG window's share of its parent GPU and how it was obtained

    def read_utilization(self) -> None:
        """Add one NVML utilisation sample (%); on any failure stop sampling it for this GPU."""
        if self.util_off or self.lost_at is not None or self.error is not None:
            return
        try:
            self.util_sum_percent += nvml.utilization_percent(self.gpu.handle)
            self.util_samples += 1
        except Exception as exc:  # never let utilisation (a side figure) disturb the energy measurement
            self.util_off = True
            supported = not (isinstance(exc, nvml.NvmlError) and (exc.not_supported or exc.gpu_lost))
            self.util_error = str(exc) if supported else None

    def read_power(self, t: float) -> bool:
        """Take one power sample at ``t``; return True when power moved fast since the last one."""
        if self.lost_at is not None or self.error is not None or self.sensor is None:
            return False
        try:
            watts = mw_to_w(self.sensor.read_mw())
        except nvml.NvmlError as exc:
            if exc.gpu_lost:
                self.lost_at = t
            else:
                self.error = str(exc)
            return False
        if self.samples:
            previous = self.last_w
            self.sampled_j += (t - self.last_t) * (previous + watts) / 2.0
        else:
            previous, self.first_t, self.peak_w = watts, t, watts
        self.samples += 1
        self.last_t, self.last_w = t, watts
        if watts > self.peak_w:  # type: ignore[operator]
            self.peak_w = watts
        return abs(watts - previous) > max(_FAST_CHANGE_FRACTION * previous, _FAST_CHANGE_MIN_W)


def integrate_j(samples: list[tuple[float, float]]) -> float:
    """Trapezoidal integral (J) of (time s, power W) samples in time order."""
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in itertools.pairwise(samples))


class GpuWindow:
    """Energy of ``gpus`` between :meth:`start` and :meth:`stop`; :meth:`sample` runs on the sampler thread.
    Every ``t`` is a ``time.monotonic()`` instant (s)."""

    def __init__(self, gpus: list[nvml.Gpu], *, use_counter: bool = True, registry: WindowRegistry | None = None) -> None:
        """``registry``: where windows on this host register, to share a GPU's energy; None: every GPU is
        taken as this window's alone (``exclusive``)."""
        self._tracks = [_Track(gpu) for gpu in gpus]
        self._use_counter = use_counter
        self.registry = registry
        self._key: str | None = None
        self.sharing_error: str | None = None
        """Why this window could not register (its GPUs were then taken as its own)."""
        for track in self._tracks:  # set up now, before the window's clock starts: start() only reads
            try:
                track.sensor = nvml.PowerSensor(track.gpu)
            except nvml.NvmlError as exc:
                track.error = str(exc)
            if track.gpu.mig_devices:
                try:
                    track.mig = nvml.mig_share(track.gpu)
                except nvml.NvmlError as exc:
                    track.mig = (1.0, f"the whole GPU: its MIG slices could not be read ({exc})")

    @property
    def needs_fast_sampling(self) -> bool:
        """True when some GPU's energy comes from sampled power (no counter, or counter disabled)."""
        return any(track.start_mj is None for track in self._tracks)

    @property
    def sensor_period_s(self) -> float | None:
        """Seconds between updates of the fastest power reading among the GPUs whose energy comes from sampled
        power (sampling faster than that reads the same values again); None when there is none."""
        periods = [t.sensor.period_s for t in self._tracks if t.start_mj is None and t.sensor is not None]
        return min(periods) if periods else None

    def register(self, t: float) -> None:
        """Enter this window in the host's registry (its file: written, renamed, the folder listed once); call it
        before the window's clock starts, so that it never comes between that clock and the counters."""
        if self.registry is not None:
            try:
                self._key = self.registry.open([track.gpu.uuid for track in self._tracks], t)
            except OSError as exc:
                self.sharing_error = f"GPU sharing: the window registry {self.registry.directory} is unusable ({exc}); " \
                    "each GPU's whole energy is counted as this window's"

    def start(self, t: float) -> None:
        """Read every counter and take a first power sample; call it last when opening a window (after
        :meth:`register`)."""
        for track in self._tracks:
            if self._use_counter:
                try:
                    track.start_mj = nvml.energy_mj(track.gpu.handle)
                except nvml.NvmlError as exc:
                    track.error = str(exc)
            track.read_power(t)
            track.tick_t, track.tick_mj, track.tick_sampled_j = t, track.start_mj, track.sampled_j

    def read_end_counters(self, t: float) -> None:
        """Read every counter; call it first when closing a window, so the counter window hugs the task."""
        for track in self._tracks:
            if track.start_mj is None or track.lost_at is not None or track.error is not None:
                continue
            try:
                track.end_mj = nvml.energy_mj(track.gpu.handle)
            except nvml.NvmlError as exc:
                if exc.gpu_lost:
                    track.lost_at = t
                else:
                    track.error = str(exc)

    def sample(self, t: float) -> bool:
        """Take one power sample of every GPU (one pass, on the sampler thread); True when power moved fast."""
        fast = False
        for track in self._tracks:
            fast |= track.read_power(t)
        return fast

    def sample_utilization(self) -> None:
        """Take one NVML utilisation sample (%) of every GPU; called at the host sampling rate (1 Hz)."""
        for track in self._tracks:
            track.read_utilization()

    def attribute(self, t: float, end_mj: list[int | None] | None = None) -> None:
        """Split the energy of each GPU since the last call by this window's share of it over that interval;
        called at the host sampling rate (1 Hz) and at the end (with the end counters, ``end_mj``)."""
        if self._key is None:
            return
        entries = None
        mine: set[int] | None = None
        for k, track in enumerate(self._tracks):
            if t <= track.tick_t or track.mig is not None:  # a MIG window's share is its slices' (see _finish)
                continue
            if end_mj is not None:
                now_mj = end_mj[k]
            elif track.tick_mj is not None and track.lost_at is None and track.error is None:
                try:
                    now_mj = nvml.energy_mj(track.gpu.handle)
                except nvml.NvmlError:
                    now_mj = None
            else:
                now_mj = None
            share = None
            samples = self._process_samples(track)
            if samples:
                if mine is None:
                    mine = {os.getpid(), *descendants(os.getpid())}
                share = utilization_share(samples, mine)
                track.by_utilization |= share is not None
            if share is None:
                if entries is None:
                    assert self.registry is not None
                    entries = self.registry.entries(t)
                share, most = equal_share(entries, track.gpu.uuid, track.tick_t, t)
                track.most_windows = max(track.most_windows, most)
            track.share = share
            if now_mj is not None and track.tick_mj is not None and now_mj >= track.tick_mj:
                track.attributed_counter_j += mj_to_j(now_mj - track.tick_mj) * share
            track.attributed_sampled_j += (track.sampled_j - track.tick_sampled_j) * share
            track.tick_t, track.tick_mj, track.tick_sampled_j = t, now_mj, track.sampled_j

    def close(self, t: float) -> None:
        """Mark this window closed in the registry (at ``t``, monotonic s). Never raises."""
        if self._key is not None and self.registry is not None:
            self.registry.close(self._key, t)

    @staticmethod
    def _process_samples(track: _Track) -> list[tuple[int, int]]:
        """NVML's per-process SM utilisation samples of the GPU since the last read; [] where it has none."""
        if track.proc_util_off or track.lost_at is not None or track.error is not None:
            return []
        try:
            samples = nvml.process_utilization(track.gpu.handle, track.proc_ts)
        except nvml.NvmlError as exc:
            if exc.not_supported:
                track.proc_util_off = True
            return []
        if samples:
            track.proc_ts = max(ts for _, _, ts in samples)
        return [(pid, sm) for pid, sm, _ in samples]

    def stop(self, t: float, duration_s: float) -> tuple[list[GpuEntry], list[str]]:
        """Per-GPU results (record entries) and warnings, once :meth:`read_end_counters` ran and sampling stopped."""
        for track in self._tracks:
            track.read_power(t)
            track.read_utilization()  # NVML's figure covers the last period: the end of the window
        end_mj = [track.end_mj for track in self._tracks]
        self.attribute(t, end_mj)
        self.close(t)
        return self._entries(duration_s, end_mj)

    def snapshot(self, t: float, duration_s: float) -> tuple[list[GpuEntry], list[str]]:
        """Results so far, without closing the window (call it from the sampling thread). The energy since the
        last host sample is split first, at its own share of the GPU (another window may have opened since)."""
        now_mj = []
        for track in self._tracks:
            try:
                usable = track.start_mj is not None and track.lost_at is None and track.error is None
                now_mj.append(nvml.energy_mj(track.gpu.handle) if usable else None)
            except nvml.NvmlError:
                now_mj.append(None)
        self.attribute(t, now_mj)
        return self._entries(duration_s, now_mj)

    def _entries(self, duration_s: float, end_mj: list[int | None]) -> tuple[list[GpuEntry], list[str]]:
        entries: list[GpuEntry] = []
        warnings: list[str] = [self.sharing_error] if self.sharing_error else []
        for track, end in zip(self._tracks, end_mj, strict=True):
            entry, warning = self._finish(track, end, duration_s, shared=self._key is not None)
            entries.append(entry)
            warnings.extend(warning)
        return entries, warnings

    @staticmethod
    def _finish(track: _Track, end_mj: int | None, duration_s: float, *, shared: bool = False) -> tuple[GpuEntry, list[str]]:
        gpu, warnings = track.gpu, []
        label = f"GPU {gpu.index} ({gpu.uuid})"
        energy_j: float | None
        if end_mj is not None and track.start_mj is not None and end_mj >= track.start_mj:
            energy_j, method = mj_to_j(end_mj - track.start_mj), "counter"
        elif track.samples >= 2:
            energy_j, method = track.sampled_j, "sampled"
            if end_mj is not None and track.start_mj is not None:
                warnings.append(
                    f"{label}: the energy counter went backwards ({track.start_mj} -> {end_mj} mJ, a driver "
                    "reload?); energy was integrated from sampled power instead"
                )
        else:
            energy_j, method = None, "missing"
        complete = track.lost_at is None and track.error is None
        if track.lost_at is not None:
            measured_s = track.lost_at - track.first_t if track.samples else 0.0
            warnings.append(
                f"{label} was lost mid-window, {measured_s:.1f} s after the start: energy after that is missing"
                + ("" if energy_j is not None else " (none could be measured)")
            )
        elif track.error is not None:
            warnings.append(f"{label}: NVML failed ({track.error}); its energy is {'partial' if energy_j else 'missing'}")
        if track.util_error is not None:
            warnings.append(f"{label}: NVML utilisation failed ({track.util_error}); it was sampled {track.util_samples} time(s)")
        if track.sensor is not None and track.sensor.source == "average" and track.samples:
            warnings.append(
                f"{label}: NVML gives no instant power field on it; its power was sampled with nvmlDeviceGetPowerUsage, "
                "a 1 s average on this GPU: peak_power_w is the peak of 1 s averages"
                + (", and the sampled energy lags the load by about 0.5 s" if method == "sampled" else "")
            )
        # seconds the energy covers: the whole window for the counter, the sampled span otherwise
        measured_s = track.last_t - track.first_t if method == "sampled" else duration_s
        entry: GpuEntry = {
            "index": gpu.index,
            "cuda_index": gpu.cuda_index,
            "uuid": gpu.uuid,
            "name": gpu.name,
            "energy_j": energy_j,
            "method": method,
            "mean_power_w": (energy_j / measured_s) if energy_j is not None and measured_s > 0 else None,
            "peak_power_w": track.peak_w,
            "samples": track.samples,
            "complete": complete,
            "mean_utilization_percent": track.util_sum_percent / track.util_samples if track.util_samples else None,
            "utilization_samples": track.util_samples,
        }
        if gpu.mig_devices:
            entry["mig_devices"] = list(gpu.mig_devices)
        if track.mig is not None:
            share, how = track.mig
            entry["device_energy_j"], entry["share"], entry["attribution"] = energy_j, share, "mig-allocation"
            if energy_j is not None:
                entry["energy_j"] = energy_j * share
            warnings.append(
                f"{label} is in MIG mode and NVML gives no per-instance power: this task's GPU energy is the GPU's "
                f"x {share:.3g} ({how}), an allocation, not a measurement"
            )
        elif shared and energy_j is not None:
            _attribute_entry(entry, track, end_mj, method)
        return entry, warnings


def _attribute_entry(entry: GpuEntry, track: _Track, end_mj: int | None, method: str) -> None:
    """Put the window's part of the device's energy in ``entry`` (the device's figure kept beside it)."""
    device_j = entry["energy_j"]
    assert device_j is not None
    if method == "counter":  # what is not yet split (a snapshot between host samples) goes at the last share
        pending = mj_to_j(end_mj - track.tick_mj) if end_mj is not None and track.tick_mj is not None and end_mj >= track.tick_mj else 0.0
        attributed = track.attributed_counter_j + pending * track.share
    else:
        attributed = track.attributed_sampled_j + (track.sampled_j - track.tick_sampled_j) * track.share
    alone = track.most_windows == 1 and not track.by_utilization
    entry["device_energy_j"] = device_j
    entry["concurrent_windows"] = track.most_windows
    if alone:
        entry["attribution"], entry["share"] = "exclusive", 1.0
        return
    entry["energy_j"] = min(attributed, device_j)
    entry["share"] = entry["energy_j"] / device_j if device_j > 0 else None
    entry["attribution"] = "utilization" if track.by_utilization else "equal-split"
