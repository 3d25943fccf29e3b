"""Sharing a GPU: the host-local registry of open measuring windows, and each window's share of a device's
energy per interval. No Airflow.

Every window (a task try, an ``airflow-carbon measure``, an ``EnergyMeter``) on a host writes one small file
under ``<state_dir>/windows/`` when it opens: its name holds the pid, the process's start time and the
CLOCK_MONOTONIC open time, the file the GPUs it measures; a close renames it to carry the close time too.
Closed entries stay :data:`RETAIN_S` seconds so that windows still open can account for the intervals they
shared. Files are written whole and renamed into place: readers never see half a file and no lock is held
across a sampling interval. An entry whose process died without closing is closed when a reader notices (and ignored from then
on): the time it shared before stays shared, so no window takes more than its part of it. A reader lists the
folder again only when its modification time changed, or is as late as its last listing (:data:`COARSE_CLOCK_S`).

A window's share of a GPU's energy over an interval [a, b] (s) is, in order of preference:

- **utilization**: its process tree's share of the SM utilisation NVML reports per process
  (``nvmlDeviceGetProcessUtilization``) for the interval; where the processes reported are busy 0 %, the
  equal split below. A process list that is empty, or whose pids none exist on this host (another PID
  namespace), means "unknown", never "this task used nothing": the equal split is used instead.
- **equal split**: the time-weighted mean of 1/n(t), n(t) being the windows open on the GPU at t.
- **exclusive**: alone on the GPU for the whole window, the share is 1 and the device's figure is kept exactly.

Summed over the windows open on a GPU, the shares of any instant add up to 1 where only tracked work uses it
(equal split), or to the tracked processes' part of the utilisation (utilization): attributed energies never
add up to more than the device drew. The split assumes power is even within an interval (1 s).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_carbon.core.processes import start_ticks

__all__ = ["RETAIN_S", "WindowEntry", "WindowRegistry", "default_state_dir", "equal_share", "utilization_share"]

RETAIN_S = 60.0
"""Seconds a closed window's entry is kept, so that windows still open can account for the time they shared
(each accounts for it at its next host sample, a second later, or at its end)."""

LIVENESS_CHECK_S = 5.0
"""Seconds between checks that the processes of open entries are still alive."""

COARSE_CLOCK_S = 0.05
"""A folder's modification time has the kernel's coarse clock resolution (a few ms): a change this close (s)
to the last listing may leave the stamp it had then, so the folder is listed once more."""


def default_state_dir() -> Path:
    """``$XDG_RUNTIME_DIR/airflow-carbon``, else ``<tmp>/airflow-carbon-<uid>``: one per user and host."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "airflow-carbon"
    return Path(tempfile.gettempdir()) / f"airflow-carbon-{os.getuid()}"


@dataclass(frozen=True)
class WindowEntry:
    """An open or recently closed window: its process, devices (GPU UUIDs) and times (CLOCK_MONOTONIC s)."""

    key: str
    pid: int
    start_ticks: int
    devices: tuple[str, ...]
    opened_s: float
    closed_s: float | None = None

    def open_at(self, t: float) -> bool:
        return self.opened_s <= t and (self.closed_s is None or t < self.closed_s)


_DEVICES: dict[str, tuple[str, ...]] = {}
"""The devices of each window key read so far in this process (a window's devices never change)."""


class WindowRegistry:
    """The windows open on this host, in ``directory`` (:func:`default_state_dir` when None). A window's
    identity and times are in its file's name (``<pid>_<start ticks>_<opened ns>_<n>.open``, renamed
    ``...<closed ns>.closed`` when it closes: one atomic rename); its devices in the file (read once per
    process). Each window writes only its own file."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = (Path(directory) if directory is not None else default_state_dir()) / "windows"
        self._mtime_ns = -1
        self._listed_s = 0.0  # wall time (s) of the last listing
        self._entries: list[WindowEntry] = []
        self._checked_s = 0.0

    def __repr__(self) -> str:
        return f"WindowRegistry({str(self.directory)!r})"

    def open(self, devices: Sequence[str], t: float) -> str:
        """Register a window on ``devices`` opened at ``t`` (monotonic s); returns its key. Raises OSError."""
        global _OPENED
        self.directory.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        _OPENED += 1
        key = f"{pid}_{start_ticks(pid) or 0}_{round(t * 1e9)}_{_OPENED}"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"devices": list(devices)}, fh)
            os.replace(tmp, self.directory / f"{key}.open")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _DEVICES[key] = tuple(devices)
        self._load(t)  # close what died before this window opened, at its opening: it never shares with them
        return key

    def close(self, key: str, t: float) -> None:
        """Mark the window ``key`` closed at ``t`` (monotonic s). Never raises."""
        with contextlib.suppress(OSError):
            os.rename(self.directory / f"{key}.open", self.directory / f"{key}.{round(t * 1e9)}.closed")

    def entries(self, now: float | None = None) -> list[WindowEntry]:
        """The entries of live or recently closed windows (the folder listed again only when it changed)."""
        now = time.monotonic() if now is None else now
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return []
        if mtime != self._mtime_ns or mtime / 1e9 >= self._listed_s - COARSE_CLOCK_S:
            self._mtime_ns, self._listed_s = mtime, time.time()
            self._entries = self._load(now)
            self._checked_s = now
        elif now - self._checked_s >= LIVENESS_CHECK_S:
            self._checked_s = now
            self._entries = [self._closed_if_dead(e, now) for e in self._entries]
        return self._entries

    # -- internals ---------------------------------------------------------------------------------
    def _load(self, now: float) -> list[WindowEntry]:
        out = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        for name in names:
            entry = self._parse(name)
            if entry is None:
                continue
            if entry.closed_s is not None and now - entry.closed_s > RETAIN_S:
                with contextlib.suppress(OSError):
                    os.unlink(self.directory / name)
                continue
            out.append(self._closed_if_dead(entry, now))
        return out

    def _parse(self, name: str) -> WindowEntry | None:
        """The entry a file name stands for (its devices read once); None for anything else."""
        parts = name.split(".")
        if len(parts) not in (2, 3) or parts[-1] not in ("open", "closed") or (parts[-1] == "closed") != (len(parts) == 3):
            return None
        key = parts[0]
        try:
            pid, ticks, opened_ns, _ = (int(x) for x in key.split("_"))
            closed_s = int(parts[1]) / 1e9 if len(parts) == 3 else None
        except ValueError:
            return None
        devices = _DEVICES.get(key)
        if devices is None:
            try:
                devices = _DEVICES[key] = tuple(json.loads((self.directory / name).read_text("utf-8"))["devices"])
            except (OSError, ValueError, KeyError, TypeError):
                return None  # renamed meanwhile (read again at the next listing), or not ours
        return WindowEntry(key, pid, ticks, devices, opened_ns / 1e9, closed_s)

    def _closed_if_dead(self, entry: WindowEntry, now: float) -> WindowEntry:
        """An open entry whose process is gone, closed at ``now`` (when its death was noticed; the file's name
        says so for other readers). Closing it then, not at its unknown last breath, can only leave others a
        smaller share of the time between: never more than the device drew."""
        if entry.closed_s is not None or start_ticks(entry.pid) == entry.start_ticks:
            return entry
        self.close(entry.key, now)
        return WindowEntry(entry.key, entry.pid, entry.start_ticks, entry.devices, entry.opened_s, now)


_OPENED = 0
"""Windows this process opened (the last part of a key: one process may open several at once)."""


def equal_share(entries: Iterable[WindowEntry], device: str, a: float, b: float) -> tuple[float, int]:
    """The equal split of ``device`` for a window open over [``a``, ``b``] (monotonic s): the time-weighted mean
    of 1/n(t) over the interval, n(t) the windows open on ``device`` at t (this one included, at least 1);
    and the most windows open at once."""
    on = [e for e in entries if device in e.devices and e.opened_s < b and (e.closed_s is None or e.closed_s > a)]
    if b <= a:
        n = max(1, sum(1 for e in on if e.open_at(a)))
        return 1.0 / n, n
    cuts = sorted({a, b, *(t for e in on for t in (e.opened_s, e.closed_s) if t is not None and a < t < b)})
    total, most = 0.0, 1
    for t0, t1 in itertools.pairwise(cuts):
        mid = (t0 + t1) / 2
        n = max(1, sum(1 for e in on if e.open_at(mid)))
        most = max(most, n)
        total += (t1 - t0) / n
    return total / (b - a), most


def utilization_share(samples: Iterable[tuple[int, int]], mine: set[int]) -> float | None:
    """This window's share of the SM utilisation in ``samples`` ((pid, SM %) from NVML for one interval), its
    process tree being ``mine`` (pids); None where it is unknown: no samples, no busy sample, or none of the
    reported pids on this host (another PID namespace)."""
    by_pid: dict[int, int] = {}
    for pid, sm in samples:
        by_pid[pid] = by_pid.get(pid, 0) + max(0, sm)
    total = sum(by_pid.values())
    if not by_pid or total <= 0:
        return None
    if not any(pid in mine or os.path.exists(f"/proc/{pid}") for pid in by_pid):
        return None
    return sum(sm for pid, sm in by_pid.items() if pid in mine) / total
