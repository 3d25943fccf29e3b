"""CPU and RAM energy over one window.

CPU: the package energy counters of RAPL (``/sys/class/powercap/intel-rapl:N``, Intel and AMD), with
counter wrap handled through ``max_energy_range_uj``. Where RAPL is unreadable (VMs, containers,
permission denied) the CPU energy is *estimated* as the process tree's CPU time (s) x
``cpu_w_per_core`` (W per fully busy core).

RAM: always *estimated*, from the process tree's resident memory (GB, time-averaged over the window)
x ``ram_w_per_gb``; never the whole host's memory.

Utilisation, from the same samples: CPU = the tree's CPU time / (duration x the host's logical CPUs),
in %; RAM = the tree's mean resident memory / the host's RAM, in %. Both are the tree's, not the host's.

The process tree is this process, its live descendants, and descendants already waited for (counted
by the kernel in this process's children times), so a task that launches ``torchrun`` is covered.
"""

from __future__ import annotations

import functools
import itertools
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

from airflow_carbon.core.options import OPTION
from airflow_carbon.core.record import Component
from airflow_carbon.core.units import BYTES_PER_GB, j_to_kwh, uj_to_j

DEFAULT_CPU_W_PER_CORE: float = OPTION["cpu_w_per_core"].default
"""W drawn per fully busy CPU core, used where RAPL is unreadable: server CPUs draw 4-7 W per core at
full load (AMD EPYC 7763: 280 W TDP / 64 cores = 4.4 W; Intel Xeon 8480+: 350 W / 56 = 6.3 W), plus a
share of the uncore."""

DEFAULT_RAM_W_PER_GB: float = OPTION["ram_w_per_gb"].default
"""W per GB of resident memory: the figure of the Green Algorithms calculator (Lannelongue et al., 2021)."""

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


@dataclass
class _RaplZone:
    name: str
    energy_path: Path
    max_range_uj: int
    last_uj: int
    total_uj: int = 0

    def read(self) -> None:
        now = int(self.energy_path.read_text())
        delta = now - self.last_uj
        if delta < 0:  # the counter wrapped
            delta += self.max_range_uj
        self.total_uj += delta
        self.last_uj = now


def _open_rapl(root: Path) -> tuple[list[_RaplZone], str | None]:
    """The CPU package zones under ``root``, or the reason none is readable."""
    if not root.is_dir():
        return [], f"{root} does not exist (no RAPL: a VM, a container or a non-x86 CPU)"
    zones = []
    try:
        for zone in sorted(root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:  # sub-zones (core, uncore, dram) are inside the package's figure
                continue
            name = (zone / "name").read_text().strip()
            if not name.startswith("package"):
                continue
            zones.append(
                _RaplZone(
                    name=name,
                    energy_path=zone / "energy_uj",
                    max_range_uj=int((zone / "max_energy_range_uj").read_text()),
                    last_uj=int((zone / "energy_uj").read_text()),
                )
            )
    except OSError as exc:  # PermissionError since Linux 5.10 for non-root, EIO, ...
        return [], f"RAPL is unreadable ({exc.strerror or exc}: {getattr(exc, 'filename', root)})"
    except ValueError as exc:
        return [], f"RAPL gave an unreadable value ({exc})"
    if not zones:
        return [], f"{root} has no CPU package zone"
    return zones, None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _linux_children(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc/<pid>/task/<tid>/children (Linux >= 3.5)."""
    children: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                children.extend(int(c) for c in f.read().split())
        except OSError:  # the thread or process just exited
            continue
    return children


def _linux_tree_stats(root_pid: int) -> tuple[float, int]:
    """(CPU s, resident bytes) of the tree under ``root_pid``, reading only its own /proc entries."""
    cpu_ticks, rss_pages, stack = 0, 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            stack.extend(_linux_children(pid))
        except OSError:  # exited: its time moved to its parent's children times
            continue
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17, rss is 24
        cpu_ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        rss_pages += int(fields[21])
    return cpu_ticks / _CLOCK_TICKS, rss_pages * _PAGE_BYTES


def _psutil_tree_stats(root_pid: int) -> tuple[float, int]:
    """(CPU s, resident bytes) of the tree under ``root_pid`` through psutil (non-Linux)."""
    import psutil

    proc = psutil.Process(root_pid)
    cpu_s, rss = 0.0, 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            cpu_s += t.user + t.system + t.children_user + t.children_system
            rss += p.memory_info().rss
        except psutil.Error:
            continue
    return cpu_s, rss


def tree_stats(root_pid: int | None = None) -> tuple[float, int]:
    """CPU time (user + system, s) and resident memory (bytes) of a process tree (default: this one).

    Descendants already waited for count through their parents' children times, so a command that
    ran and exited inside the window is included.
    """
    pid = os.getpid() if root_pid is None else root_pid
    if os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return _linux_tree_stats(pid)
    return _psutil_tree_stats(pid)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7763 64-Core Processor'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def cpu_sockets() -> int:
    """Number of CPU packages (sockets) in this host."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            ids = {line.split(":", 1)[1].strip() for line in f if line.startswith("physical id")}
        return max(1, len(ids))
    except OSError:
        return 1


@functools.cache
def logical_cpus() -> int | None:
    """Logical CPUs (hardware threads) of this host, as ``psutil.cpu_count()``; None when unknown."""
    return os.cpu_count()


@functools.cache
def host_memory_bytes() -> int | None:
    """The host's total RAM (bytes), as ``psutil.virtual_memory().total``; None when unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * _PAGE_BYTES
    except (AttributeError, OSError, ValueError):  # no sysconf name here (macOS, Windows)
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


@functools.cache
def platform_info() -> dict[str, str]:
    """The OS (``platform.platform()``) and Python version of this process; empty if unreadable."""
    try:
        return {"os": platform.platform(), "python_version": platform.python_version()}
    except Exception:  # never break a record over a label
        return {}


def hostname() -> str:
    return socket.gethostname()


@dataclass
class HostWindow:
    """CPU and RAM energy of this process tree from :meth:`start` to each :meth:`read`.
    Every ``t`` is a ``time.monotonic()`` instant (s); ``duration_s`` is the window's length (s)."""

    cpu_w_per_core: float = DEFAULT_CPU_W_PER_CORE
    ram_w_per_gb: float = DEFAULT_RAM_W_PER_GB
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    _zones: list[_RaplZone] = field(default_factory=list)
    _rapl_reason: str | None = None
    _cpu_start_s: float = 0.0
    _rss: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, bytes)
    _errors: list[str] = field(default_factory=list)

    def start(self, t: float) -> None:
        self._zones, self._rapl_reason = _open_rapl(Path(self.powercap_root))
        self._cpu_start_s = self.sample(t)

    def sample(self, t: float) -> float:
        """Read RAPL (often enough to catch a counter wrap) and the tree; return its CPU time (s)."""
        for zone in self._zones:
            try:
                zone.read()
            except (OSError, ValueError) as exc:
                self._errors.append(f"RAPL zone {zone.name} became unreadable ({exc})")
                self._zones = []
                self._rapl_reason = "RAPL became unreadable mid-window"
                break
        cpu_s, rss_bytes = tree_stats()
        self._rss.append((t, rss_bytes))
        return cpu_s

    def read(self, t: float, duration_s: float) -> tuple[Component, Component, list[str]]:
        """The cpu and ram components of the record so far, and warnings (the window stays open)."""
        cpu_time_s = max(0.0, self.sample(t) - self._cpu_start_s)
        warnings = list(self._errors)
        hardware = {"model": cpu_model(), "sockets": cpu_sockets()}
        if self._zones:
            cpu: Component = {
                **hardware,
                "energy_kwh": j_to_kwh(sum(uj_to_j(z.total_uj) for z in self._zones)),
                "method": "rapl",
                "packages": len(self._zones),
                "cpu_time_s": cpu_time_s,
            }
            warnings.append("CPU energy is RAPL's whole-package figure: it includes other processes on this host")
        else:
            cpu = {
                **hardware,
                "energy_kwh": j_to_kwh(cpu_time_s * self.cpu_w_per_core),
                "method": "estimated",
                "cpu_time_s": cpu_time_s,
                "w_per_core": self.cpu_w_per_core,
            }
            warnings.append(
                f"CPU energy estimated from the process tree's CPU time x {self.cpu_w_per_core:g} W per core: "
                f"{self._rapl_reason}"
            )
        cpus = logical_cpus()
        if cpus:
            cpu["logical_cpus"] = cpus
            if duration_s > 0:
                cpu["mean_utilization_percent"] = 100.0 * cpu_time_s / (duration_s * cpus)
        mean_rss_gb = _time_mean(self._rss) / BYTES_PER_GB
        ram: Component = {
            "energy_kwh": j_to_kwh(mean_rss_gb * self.ram_w_per_gb * duration_s),
            "method": "estimated",
            "mean_rss_gb": mean_rss_gb,
            "w_per_gb": self.ram_w_per_gb,
        }
        total = host_memory_bytes()
        if total:
            ram["host_total_gb"] = total / BYTES_PER_GB
            ram["mean_utilization_percent"] = 100.0 * mean_rss_gb * BYTES_PER_GB / total
        return cpu, ram, warnings


def _time_mean(samples: list[tuple[float, int]]) -> float:
    """Time-weighted mean of (time s, value) samples; the plain mean when they span no time."""
    if not samples:
        return 0.0
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        return sum(v for _, v in samples) / len(samples)
    return sum((t1 - t0) * (v0 + v1) / 2.0 for (t0, v0), (t1, v1) in itertools.pairwise(samples)) / span
