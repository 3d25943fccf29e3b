"""CPU and RAM energy over one window.

CPU, where RAPL is readable: the package energy counters of RAPL (``/sys/class/powercap/intel-rapl:N``,
Intel and AMD), with counter wrap handled through ``max_energy_range_uj``, split among the processes
of the host by *CPU-time share* (``attribution: "cpu-time-share"``). For each interval between two host
samples (about 1 s: the meter samples at 1 Hz, plus the window's start and end) the window is charged

    package energy of the interval (J) x clamp(tree's CPU time / host's busy CPU time, 0, 1)

where the host's busy CPU time is read from the aggregate ``cpu`` line of ``/proc/stat`` (user + nice +
system + irq + softirq + steal, in USER_HZ ticks; idle and iowait are not busy, guest time is already
inside user) and the tree's is its own user + system time (reaped children included, see below).
``device_energy_kwh`` is the packages' whole energy over the window and ``share`` = energy_kwh /
device_energy_kwh. The limits of this rule:

* An interval in which the host was not busy at all gives share 0: its energy was the packages' idle
  power, not this task's. Idle power is thus attributed to nobody, so the sum over the windows open on a
  host never exceeds what the packages drew (and is usually below it).
* The share is of busy *time*, not of power: a core's power varies with its frequency, its voltage and
  the instructions it runs (AVX-512 draws more than a scalar loop; a stalled core draws less), so two
  tasks with equal CPU time get equal energy even where one drew more. Likewise the uncore (caches,
  memory controller) is split by CPU time.
* Kernel work done for the task outside its own context (interrupts, softirqs, kernel threads) is
  counted as the host's busy time but not as the tree's, so the tree's share is a little low.
* The two counters are tick-based (10 ms per CPU at USER_HZ = 100), so each ~1 s interval's share is
  quantised; a process leaving the tree (daemonised, so reparented away) makes the tree's time drop,
  which the clamp turns into share 0 for that interval.
* ``/proc/stat`` must be the host's, as RAPL is: where it is virtualised for a container (lxcfs), it
  counts the container's CPUs only and the share comes out too high.

Where ``/proc/stat`` is unreadable the CPU energy is RAPL's whole-package figure, as before this rule
(``attribution`` absent, with a warning that it includes other processes). Where RAPL is unreadable
(VMs, containers, permission denied) the CPU energy is *estimated* as the process tree's CPU time (s) x
``cpu_w_per_core`` (W per fully busy core): per process by construction (``attribution:
"process-tree"``).

RAM: always *estimated*, as the process tree's memory (GB, time-averaged over the window) x
``ram_w_per_gb``; never the whole host's memory. The memory is the tree's *proportional set size* (PSS,
``Pss:`` of ``/proc/PID/smaps_rollup``, Linux >= 4.14) where it is readable for every process of the tree
(``memory: "pss"``, ``mean_pss_gb``): a page shared by n processes counts 1/n in each, so a page shared
by a parent and its forked workers counts once, and a shared library mapped by tasks in other trees
counts only this tree's part. Otherwise (not Linux, an old kernel, a descendant of another user) it is
the resident set size (RSS, ``memory: "rss"``), which counts a shared page in full in every process that
maps it, so forked workers and concurrent tasks double-count. ``mean_rss_gb`` is always the RSS mean.

Reading ``smaps_rollup`` walks the process's page tables, so it costs more than ``/proc/PID/stat`` and
grows with the resident memory: 10-35 us per resident MB with 4 KiB pages (measured on a 2-core VM:
0.2 ms for an 18 MB Python process, 3-7 ms for 120-230 MB, 10-13 ms for 0.5-1.1 GB, against 35 us for
the stat walk). PSS is therefore read at the window's start and then whenever the last read cost at
most :data:`PSS_READ_BUDGET` (0.2 %) of the time since it: at every 1 Hz sample for a tree of up to
~100 MB, every 5-20 s per GB above that. Between two reads the tree's PSS is taken as the sample's RSS
x the PSS / RSS ratio of the last read, so the mean follows the RSS read at every sample.

Utilisation, from the same samples: CPU = the tree's CPU time / (duration x the host's logical CPUs),
in %; RAM = the tree's mean memory (the one the energy used) / the host's RAM, in %. Both are the
tree's, not the host's.

The process tree is this process, its live descendants, and descendants already waited for (counted
by the kernel in this process's children times), so a task that launches ``torchrun`` is covered.
"""

from __future__ import annotations

import functools
import itertools
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from airflow_carbon.core.options import OPTION
from airflow_carbon.core.processes import children
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

DEFAULT_PROC_ROOT = "/proc"

PSS_READ_BUDGET = 0.002
"""Fraction of the wall time that reading PSS may take: after a read that took c s, the next one waits
c / PSS_READ_BUDGET s (a 1 ms read: every 0.5 s, so at every 1 Hz sample; a 10 ms read: every 5 s)."""

PSS_FIRST_READ_S = 1.0
"""Seconds after a window's start of its first PSS read (the meter's first host sample): reading PSS costs
milliseconds for a large tree, which a task's start-up should not pay; a shorter window reports RSS."""

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
"""Fields of /proc/stat's ``cpu`` line that are busy time: user, nice, system, irq, softirq, steal
(guest and guest_nice, fields 8 and 9, are already inside user and nice; idle and iowait are not busy)."""


def host_busy_s(proc_root: str = DEFAULT_PROC_ROOT) -> float:
    """The host's busy CPU time since boot (s, summed over its CPUs), from ``<proc_root>/stat``.

    Raises OSError or ValueError where the file is unreadable or has no ``cpu`` line.
    """
    with open(os.path.join(proc_root, "stat"), "rb") as f:
        for line in f:
            if line.startswith(b"cpu "):
                ticks = line.split()[1:]
                return sum(int(ticks[i]) for i in _BUSY_FIELDS if i < len(ticks)) / _CLOCK_TICKS
    raise ValueError(f"{proc_root}/stat has no aggregate cpu line")


@dataclass(frozen=True)
class TreeSample:
    """One reading of a process tree: CPU time (user + system, s, reaped children included), resident
    set size (bytes) and proportional set size (bytes; None where it was not asked for or not readable,
    see ``pss_error``)."""

    cpu_s: float
    rss_bytes: int
    pss_bytes: int | None = None
    pss_error: str | None = None


def _linux_pss_bytes(pid: int) -> int:
    """Proportional set size (bytes) of ``pid`` from /proc/<pid>/smaps_rollup (Linux >= 4.14).

    0 for a process that exited or is a zombie (it holds no memory); raises OSError (permission denied,
    no smaps_rollup) or ValueError (no ``Pss:`` line) where it is unreadable.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            content = f.read()
    except (FileNotFoundError, ProcessLookupError):  # exited, or a zombie (ESRCH)
        return 0
    if not content:  # no address space (a zombie on some kernels)
        return 0
    for line in content.splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) * 1024  # kB
    raise ValueError(f"/proc/{pid}/smaps_rollup has no Pss line")


def _linux_tree_sample(root_pid: int, pss: bool) -> TreeSample:
    """The tree under ``root_pid``, reading only its own /proc entries; PSS too where ``pss``."""
    cpu_ticks, rss_pages, pss_bytes, stack = 0, 0, 0, [root_pid]
    pss_error: str | None = None
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            stack.extend(children(pid))
        except OSError:  # exited: its time moved to its parent's children times
            continue
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17, rss is 24
        cpu_ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        rss_pages += int(fields[21])
        if pss and pss_error is None:
            try:
                pss_bytes += _linux_pss_bytes(pid)
            except (OSError, ValueError) as exc:
                pss_error = f"PSS of process {pid} is unreadable ({getattr(exc, 'strerror', None) or exc})"
    return TreeSample(
        cpu_s=cpu_ticks / _CLOCK_TICKS,
        rss_bytes=rss_pages * _PAGE_BYTES,
        pss_bytes=pss_bytes if pss and pss_error is None else None,
        pss_error=pss_error,
    )


def _psutil_tree_sample(root_pid: int) -> TreeSample:
    """The tree under ``root_pid`` through psutil (non-Linux: no PSS)."""
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
    return TreeSample(cpu_s=cpu_s, rss_bytes=rss, pss_error="no /proc/PID/smaps_rollup on this OS")


def tree_sample(root_pid: int | None = None, *, pss: bool = False) -> TreeSample:
    """CPU time, resident memory and, where ``pss``, proportional set size of a process tree (default:
    this one): the root, its live descendants, and descendants already waited for (through their
    parents' children times), so a command that ran and exited inside the window is included.

    PSS is the sum over the tree's processes, None (with ``pss_error``) unless readable for all of them.
    """
    pid = os.getpid() if root_pid is None else root_pid
    if os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return _linux_tree_sample(pid, pss)
    return _psutil_tree_sample(pid)


def tree_stats(root_pid: int | None = None) -> tuple[float, int]:
    """CPU time (user + system, s) and resident memory (bytes) of a process tree (default: this one).

    Descendants already waited for count through their parents' children times, so a command that
    ran and exited inside the window is included.
    """
    sample = tree_sample(root_pid)
    return sample.cpu_s, sample.rss_bytes


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
    Every ``t`` is a ``time.monotonic()`` instant (s); ``duration_s`` is the window's length (s).

    ``powercap_root`` is where RAPL's zones are read; ``proc_root`` is where ``stat`` (the host's busy
    CPU time) is read: both settable for tests. The tree's own figures always come from the real /proc.
    """

    cpu_w_per_core: float = DEFAULT_CPU_W_PER_CORE
    ram_w_per_gb: float = DEFAULT_RAM_W_PER_GB
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    proc_root: str = DEFAULT_PROC_ROOT
    _zones: list[_RaplZone] = field(default_factory=list)
    _rapl_reason: str | None = None
    _busy_reason: str | None = None  # why the host's busy time is unreadable; None while it is read
    _last_busy_s: float = 0.0  # the host's busy CPU time at the last sample, s
    _last_tree_cpu_s: float = 0.0  # the tree's CPU time at the last sample, s
    _attributed_uj: float = 0.0  # package energy charged to the tree so far, uJ
    _cpu_start_s: float = 0.0
    _rss: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, bytes)
    _pss: list[tuple[float, float]] = field(default_factory=list)  # (monotonic s, bytes: read, or RSS x ratio)
    _pss_ratio: float = 1.0  # the tree's PSS / RSS at the last PSS read
    _pss_reason: str | None = None  # why PSS is not used; None while it is read
    _next_pss_t: float = 0.0  # monotonic s: PSS is read at the first sample at or after it
    _pss_reads: int = 0  # PSS reads in this window (none yet: the RAM figure is RSS's)
    _errors: list[str] = field(default_factory=list)

    def start(self, t: float) -> None:
        """Open the window: find RAPL's zones and read every counter's starting value."""
        self._zones, self._rapl_reason = _open_rapl(Path(self.powercap_root))
        self._busy_reason = None
        if self._zones:
            try:
                self._last_busy_s = host_busy_s(self.proc_root)
            except (OSError, ValueError) as exc:
                self._busy_reason = f"{self.proc_root}/stat is unreadable ({getattr(exc, 'strerror', None) or exc})"
        self._attributed_uj, self._errors = 0.0, []
        self._rss, self._pss, self._pss_reason, self._pss_ratio = [], [], None, 1.0
        self._next_pss_t, self._pss_reads = t + PSS_FIRST_READ_S, 0  # not on the start-up path: ms for a big tree
        tree = self._sample_tree(t, force_pss=False)
        self._cpu_start_s = self._last_tree_cpu_s = tree.cpu_s

    def sample(self, t: float) -> float:
        """Read RAPL (often enough to catch a counter wrap), the host's busy time and the tree; charge the
        interval since the last sample its share of the packages' energy; return the tree's CPU time (s).
        Called by the meter at 1 Hz, and by each :meth:`read` (checkpoints, a budget's 2 Hz guard)."""
        before_uj = sum(z.total_uj for z in self._zones)
        for zone in self._zones:
            try:
                zone.read()
            except (OSError, ValueError) as exc:
                self._errors.append(f"RAPL zone {zone.name} became unreadable ({exc})")
                self._zones = []
                self._rapl_reason = "RAPL became unreadable mid-window"
                break
        busy_s: float | None = None
        if self._zones and self._busy_reason is None:
            try:
                busy_s = host_busy_s(self.proc_root)
            except (OSError, ValueError) as exc:
                self._errors.append(f"{self.proc_root}/stat became unreadable ({getattr(exc, 'strerror', None) or exc})")
                self._busy_reason = f"{self.proc_root}/stat became unreadable mid-window"
        tree = self._sample_tree(t, force_pss=False)
        if busy_s is not None:
            interval_uj = sum(z.total_uj for z in self._zones) - before_uj
            self._attributed_uj += interval_uj * _share(tree.cpu_s - self._last_tree_cpu_s, busy_s - self._last_busy_s)
            self._last_busy_s = busy_s
        self._last_tree_cpu_s = tree.cpu_s
        return tree.cpu_s

    def _sample_tree(self, t: float, force_pss: bool) -> TreeSample:
        """Read the tree, with its PSS when due (or forced) and still readable; keep the memory figures."""
        want_pss = self._pss_reason is None and (force_pss or t >= self._next_pss_t)
        t0 = time.perf_counter()
        tree = tree_sample(pss=want_pss)
        cost_s = time.perf_counter() - t0
        self._rss.append((t, tree.rss_bytes))
        if want_pss:
            if tree.pss_bytes is None:
                self._pss_reason = tree.pss_error or "PSS is unreadable"
                self._pss = []
                return tree
            if tree.rss_bytes > 0:
                self._pss_ratio = min(1.0, tree.pss_bytes / tree.rss_bytes)
            if self._pss_reads == 0:  # the samples before the first read: their RSS x this read's PSS / RSS
                self._pss = [(ts, v * self._pss_ratio) for ts, v in self._pss]
            self._pss_reads += 1
            self._pss.append((t, tree.pss_bytes))
            self._next_pss_t = t + cost_s / PSS_READ_BUDGET  # cost_s includes the stat walk: an upper bound
        elif self._pss_reason is None:  # between reads: this sample's RSS x the last read's PSS / RSS
            self._pss.append((t, tree.rss_bytes * self._pss_ratio))
        return tree

    def read(self, t: float, duration_s: float) -> tuple[Component, Component, list[str]]:
        """The cpu and ram components of the record so far, and warnings (the window stays open)."""
        cpu_time_s = max(0.0, self.sample(t) - self._cpu_start_s)
        warnings = list(self._errors)
        hardware = {"model": cpu_model(), "sockets": cpu_sockets()}
        if self._zones:
            device_j = sum(uj_to_j(z.total_uj) for z in self._zones)
            cpu: Component = {
                **hardware,
                "energy_kwh": j_to_kwh(device_j),
                "method": "rapl",
                "packages": len(self._zones),
                "cpu_time_s": cpu_time_s,
            }
            if self._busy_reason is None:
                energy_j = min(device_j, uj_to_j(self._attributed_uj))
                cpu["energy_kwh"] = j_to_kwh(energy_j)
                cpu["attribution"] = "cpu-time-share"
                cpu["device_energy_kwh"] = j_to_kwh(device_j)
                cpu["share"] = min(1.0, energy_j / device_j) if device_j > 0 else None
            else:
                warnings.append(
                    f"CPU energy is RAPL's whole-package figure: it includes other processes on this host ({self._busy_reason})"
                )
        else:
            cpu = {
                **hardware,
                "energy_kwh": j_to_kwh(cpu_time_s * self.cpu_w_per_core),
                "method": "estimated",
                "attribution": "process-tree",
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
        use_pss = self._pss_reason is None and self._pss_reads > 0  # a window shorter than the first read: RSS, said so
        memory_gb = _time_mean(self._pss) / BYTES_PER_GB if use_pss else mean_rss_gb
        ram: Component = {
            "energy_kwh": j_to_kwh(memory_gb * self.ram_w_per_gb * duration_s),
            "method": "estimated",
            "memory": "pss" if use_pss else "rss",
            "mean_rss_gb": mean_rss_gb,
            "w_per_gb": self.ram_w_per_gb,
        }
        if use_pss:
            ram["mean_pss_gb"] = memory_gb
        total = host_memory_bytes()
        if total:
            ram["host_total_gb"] = total / BYTES_PER_GB
            ram["mean_utilization_percent"] = 100.0 * memory_gb * BYTES_PER_GB / total
        return cpu, ram, warnings


def _share(tree_cpu_s: float, busy_s: float) -> float:
    """The tree's share of the host's busy CPU time in one interval (both s), clamped to [0, 1]; 0 where
    the host was not busy at all (the interval's energy was idle power, attributed to nobody)."""
    if busy_s <= 0:
        return 0.0
    return min(1.0, max(0.0, tree_cpu_s / busy_s))


def _time_mean(samples: list[tuple[float, int]] | list[tuple[float, float]]) -> float:
    """Time-weighted mean of (time s, value) samples; the plain mean when they span no time."""
    if not samples:
        return 0.0
    span = samples[-1][0] - samples[0][0]
    if span <= 0:
        return sum(v for _, v in samples) / len(samples)
    return sum((t1 - t0) * (v0 + v1) / 2.0 for (t0, v0), (t1, v1) in itertools.pairwise(samples)) / span
