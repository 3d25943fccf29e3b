"""GPU energy over one window: NVML's total-energy counter where the GPU has one, sampled power otherwise.

Power is sampled on every GPU in any case (for mean and peak power, and as the fallback when the counter
is missing, goes backwards after a driver reload, or the GPU is lost mid-window). Sampled energy is the
trapezoidal integral of the samples, including one taken synchronously at the window's start and end.
NVML's utilisation (% of time a kernel ran) is sampled at the host rate (1 Hz) and once at the window's
end, and averaged (the utilisation CodeCarbon reports).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from airflow_carbon.core import nvml
from airflow_carbon.core.record import GpuEntry
from airflow_carbon.core.units import mj_to_j, mw_to_w

_FAST_CHANGE_FRACTION = 0.10
_FAST_CHANGE_MIN_W = 5.0


@dataclass
class _Track:
    gpu: nvml.Gpu
    start_mj: int | None = None
    end_mj: int | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic s, W)
    lost_at: float | None = None
    error: str | None = None
    util_sum_percent: int = 0  # running sum and count of NVML utilisation samples (no list: sampled at 1 Hz for days)
    util_samples: int = 0
    util_error: str | None = None  # why utilisation stopped being sampled (None: not supported, or fine)
    util_off: bool = False

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
        if self.lost_at is not None or self.error is not None:
            return False
        try:
            watts = mw_to_w(nvml.power_mw(self.gpu.handle))
        except nvml.NvmlError as exc:
            if exc.gpu_lost:
                self.lost_at = t
            else:
                self.error = str(exc)
            return False
        previous = self.samples[-1][1] if self.samples else watts
        self.samples.append((t, watts))
        return abs(watts - previous) > max(_FAST_CHANGE_FRACTION * previous, _FAST_CHANGE_MIN_W)


def integrate_j(samples: list[tuple[float, float]]) -> float:
    """Trapezoidal integral (J) of (time s, power W) samples in time order."""
    return sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in itertools.pairwise(samples))


class GpuWindow:
    """Energy of ``gpus`` between :meth:`start` and :meth:`stop`; :meth:`sample` runs on the sampler thread.
    Every ``t`` is a ``time.monotonic()`` instant (s)."""

    def __init__(self, gpus: list[nvml.Gpu], *, use_counter: bool = True) -> None:
        self._tracks = [_Track(gpu) for gpu in gpus]
        self._use_counter = use_counter

    @property
    def needs_fast_sampling(self) -> bool:
        """True when some GPU's energy comes from sampled power (no counter, or counter disabled)."""
        return any(track.start_mj is None for track in self._tracks)

    def start(self, t: float) -> None:
        """Read every counter and take a first power sample; call it last when opening a window."""
        for track in self._tracks:
            if self._use_counter:
                try:
                    track.start_mj = nvml.energy_mj(track.gpu.handle)
                except nvml.NvmlError as exc:
                    track.error = str(exc)
            track.read_power(t)

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
        fast = False
        for track in self._tracks:
            fast |= track.read_power(t)
        return fast

    def sample_utilization(self) -> None:
        """Take one NVML utilisation sample (%) of every GPU; called at the host sampling rate (1 Hz)."""
        for track in self._tracks:
            track.read_utilization()

    def stop(self, t: float, duration_s: float) -> tuple[list[GpuEntry], list[str]]:
        """Per-GPU results (record entries) and warnings, once :meth:`read_end_counters` ran and sampling stopped."""
        for track in self._tracks:
            track.read_power(t)
            track.read_utilization()  # NVML's figure covers the last period: the end of the window
        return self._entries(duration_s, [track.end_mj for track in self._tracks])

    def snapshot(self, t: float, duration_s: float) -> tuple[list[GpuEntry], list[str]]:
        """Results so far, without closing the window (call it from the sampling thread)."""
        now_mj = []
        for track in self._tracks:
            try:
                usable = track.start_mj is not None and track.lost_at is None and track.error is None
                now_mj.append(nvml.energy_mj(track.gpu.handle) if usable else None)
            except nvml.NvmlError:
                now_mj.append(None)
        return self._entries(duration_s, now_mj)

    def _entries(self, duration_s: float, end_mj: list[int | None]) -> tuple[list[GpuEntry], list[str]]:
        entries: list[GpuEntry] = []
        warnings: list[str] = []
        for track, end in zip(self._tracks, end_mj, strict=True):
            entry, warning = self._finish(track, end, duration_s)
            entries.append(entry)
            warnings.extend(warning)
        return entries, warnings

    @staticmethod
    def _finish(track: _Track, end_mj: int | None, duration_s: float) -> tuple[GpuEntry, list[str]]:
        gpu, warnings = track.gpu, []
        label = f"GPU {gpu.index} ({gpu.uuid})"
        energy_j: float | None
        if end_mj is not None and track.start_mj is not None and end_mj >= track.start_mj:
            energy_j, method = mj_to_j(end_mj - track.start_mj), "counter"
        elif len(track.samples) >= 2:
            energy_j, method = integrate_j(track.samples), "sampled"
            if end_mj is not None and track.start_mj is not None:
                warnings.append(
                    f"{label}: the energy counter went backwards ({track.start_mj} -> {end_mj} mJ, a driver "
                    "reload?); energy was integrated from sampled power instead"
                )
        else:
            energy_j, method = None, "missing"
        complete = track.lost_at is None and track.error is None
        if track.lost_at is not None:
            measured_s = track.lost_at - track.samples[0][0] if track.samples else 0.0
            warnings.append(
                f"{label} was lost mid-window, {measured_s:.1f} s after the start: energy after that is missing"
                + ("" if energy_j is not None else " (none could be measured)")
            )
        elif track.error is not None:
            warnings.append(f"{label}: NVML failed ({track.error}); its energy is {'partial' if energy_j else 'missing'}")
        if track.util_error is not None:
            warnings.append(f"{label}: NVML utilisation failed ({track.util_error}); it was sampled {track.util_samples} time(s)")
        powers = [w for _, w in track.samples]
        # seconds the energy covers: the whole window for the counter, the sampled span otherwise
        sampled = method == "sampled" and len(track.samples) >= 2
        measured_s = track.samples[-1][0] - track.samples[0][0] if sampled else duration_s
        entry: GpuEntry = {
            "index": gpu.index,
            "cuda_index": gpu.cuda_index,
            "uuid": gpu.uuid,
            "name": gpu.name,
            "energy_j": energy_j,
            "method": method,
            "mean_power_w": (energy_j / measured_s) if energy_j is not None and measured_s > 0 else None,
            "peak_power_w": max(powers) if powers else None,
            "samples": len(track.samples),
            "complete": complete,
            "mean_utilization_percent": track.util_sum_percent / track.util_samples if track.util_samples else None,
            "utilization_samples": track.util_samples,
        }
        if gpu.mig_devices:
            entry["mig_devices"] = list(gpu.mig_devices)
        return entry, warnings
