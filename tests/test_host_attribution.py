"""Who gets the host's CPU and RAM energy: RAPL's package energy split by the process tree's share of the
host's busy CPU time (/proc/stat), interval by interval, and RAM from PSS (shared pages counted once).

RAPL is a fake powercap tree whose counter a thread advances at a known power (this machine has none);
everything else is real where it can be: the tree's CPU time and memory, CPU-bound loops, a competing
process, /proc/stat itself, a mapping shared with a forked child.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_carbon.core import host
from airflow_carbon.core.host import HostWindow, TreeSample, tree_sample, tree_stats
from airflow_carbon.core.units import J_PER_KWH

pytestmark = pytest.mark.unit

CLK = os.sysconf("SC_CLK_TCK")
WATTS = 100.0
MAX_UJ = 262_143_328_850


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole, so a concurrent reader never sees a half-written file (as with sysfs)."""
    tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _package(root: Path, energy_uj: int = 0) -> Path:
    """A powercap tree with one CPU package zone, laid out as the kernel does; its energy_uj path."""
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    _write_atomically(zone / "energy_uj", f"{energy_uj}\n")
    return zone / "energy_uj"


def _write_stat(proc: Path, user: int, system: int = 0, idle: int = 0, iowait: int = 0, irq: int = 0, softirq: int = 0,
                steal: int = 0, guest: int = 0, guest_nice: int = 0, nice: int = 0) -> None:  # fmt: skip
    """A /proc/stat whose aggregate cpu line has these ticks (and a per-CPU line that must be ignored)."""
    fields = (user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice)
    cpu = " ".join(str(f) for f in fields)
    _write_atomically(proc / "stat", f"cpu  {cpu}\ncpu0 {cpu}\nintr 1 2 3\nctxt 4\nbtime 5\n")


@contextlib.contextmanager
def _every(period_s: float, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` every ``period_s`` seconds on a thread while the block runs (and once first)."""
    stop = threading.Event()
    action()

    def loop() -> None:
        while not stop.wait(period_s):
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _rapl_at(energy_path: Path, watts: float) -> Callable[[], None]:
    """An action that sets the fake counter to ``watts`` x the seconds since now (in uJ). It runs on a
    thread (the counter advances on its own) and also just before each read of the window: a thread
    spinning in Python holds the GIL, so the counter's thread alone may lag by tens of ms on a loaded
    machine. The lock keeps the counter from going back (which would read as a wrap)."""
    t0, lock = time.monotonic(), threading.Lock()

    def advance() -> None:
        with lock:
            _write_atomically(energy_path, f"{int((time.monotonic() - t0) * watts * 1e6)}\n")

    return advance


def _spin(window: HostWindow, cpu_s: float, samples: int, before_sample: Callable[[], None] = lambda: None) -> None:
    """A CPU-bound loop until this process has used ``cpu_s`` more CPU seconds (at most 4x that in wall
    time, on a loaded machine), sampling the window ``samples`` times on the way as the meter would."""
    for _ in range(samples):
        cpu_end = time.process_time() + cpu_s / samples
        wall_end = time.monotonic() + 4 * cpu_s / samples
        while time.process_time() < cpu_end and time.monotonic() < wall_end:
            pass
        before_sample()
        window.sample(time.monotonic())


def _bracketed(window: HostWindow, seconds: float, before_read: Callable[[], None]) -> tuple[dict, list[str], tuple[float, float]]:
    """Run ``window`` over a CPU-bound loop of ``seconds`` (4 samples), ``before_read`` updating the fake counters
    before each read; its cpu component, warnings, and the shortest and longest its span can have been (s)."""
    before_start = time.monotonic()
    before_read()
    window.start(time.monotonic())
    after_start = time.monotonic()
    _spin(window, seconds, samples=4, before_sample=before_read)
    before_end = time.monotonic()
    before_read()
    t1 = time.monotonic()
    cpu, _ram, warnings = window.read(t1, t1 - after_start)
    after_end = time.monotonic()
    return cpu, warnings, (before_end - after_start, after_end - before_start)


# -- RAPL split by CPU-time share -----------------------------------------------------------------


def test_each_interval_gets_its_energy_times_the_trees_share_of_busy_time(tmp_path, monkeypatch):
    """The rule, interval by interval, with scripted tree times: a half share, an idle host, a tree
    ahead of the host (clamped to 1), a tree whose time dropped (clamped to 0); only busy fields count."""
    energy = _package(tmp_path / "powercap")
    proc = tmp_path / "proc"
    proc.mkdir()
    tree_cpu = iter([10.0, 11.0, 11.0, 12.5, 12.0])
    monkeypatch.setattr(host, "tree_sample", lambda root_pid=None, *, pss=False: TreeSample(next(tree_cpu), 1_000_000))

    def at(joules: float, busy_s: float, not_busy_s: float) -> None:
        _write_atomically(energy, f"{int(joules * 1e6)}\n")
        busy, other = int(busy_s * CLK), int(not_busy_s * CLK)  # busy spread over every busy field
        _write_stat(proc, user=busy - 50, nice=10, system=10, irq=10, softirq=10, steal=10,
                    idle=other, iowait=other, guest=other, guest_nice=other)  # fmt: skip

    window = HostWindow(powercap_root=str(tmp_path / "powercap"), proc_root=str(proc))
    at(0.0, 100.0, 0.0)
    window.start(0.0)
    at(10.0, 102.0, 50.0)  # tree +1 s of host +2 s: 0.5 x 10 J (idle, iowait and guest grew: not busy)
    window.sample(1.0)
    at(20.0, 102.0, 60.0)  # the host was idle: its 10 J were idle power, nobody's
    window.sample(2.0)
    at(30.0, 103.0, 70.0)  # tree +1.5 s of host +1 s (tick skew): clamped to all 10 J
    window.sample(3.0)
    at(40.0, 104.0, 80.0)  # tree -0.5 s (a child left the tree): clamped to 0
    cpu, _ram, warnings = window.read(4.0, 4.0)

    assert cpu["method"] == "rapl" and cpu["attribution"] == "cpu-time-share"
    assert cpu["device_energy_kwh"] * J_PER_KWH == pytest.approx(40.0)
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(5.0 + 0.0 + 10.0 + 0.0)
    assert cpu["share"] == pytest.approx(15.0 / 40.0)
    assert cpu["cpu_time_s"] == pytest.approx(2.0)
    assert not warnings


def test_proc_stat_lost_mid_window_falls_back_to_the_whole_package_and_says_so(tmp_path):
    energy = _package(tmp_path / "powercap")
    proc = tmp_path / "proc"
    proc.mkdir()
    _write_stat(proc, user=1000)
    window = HostWindow(powercap_root=str(tmp_path / "powercap"), proc_root=str(proc))
    window.start(0.0)
    (proc / "stat").unlink()
    _write_atomically(energy, "7000000\n")
    cpu, _ram, warnings = window.read(1.0, 1.0)
    assert cpu["method"] == "rapl" and "attribution" not in cpu and "share" not in cpu
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(7.0)
    assert any("stat became unreadable" in w for w in warnings)
    assert any(w.startswith("CPU energy is RAPL's whole-package figure") for w in warnings)


def test_a_window_whose_host_is_twice_as_busy_as_its_tree_gets_half_the_energy(tmp_path):
    """RAPL at 100 W (a thread advances the counter); /proc/stat's busy time = 2 x this tree's real CPU
    time, as if another process did equal work; the window runs a real CPU-bound loop. Idle, iowait and
    guest ticks grow too, and must not count. The test thread updates /proc/stat just before each sample:
    a thread of its own would lag the tree by a GIL switch or two (~10 ms), noise of a few % a second."""
    energy = _package(tmp_path / "powercap")
    proc = tmp_path / "proc"
    proc.mkdir()
    tree0 = tree_stats()[0]

    def kernel() -> None:
        ticks = round((tree_stats()[0] - tree0) * CLK)
        _write_stat(proc, user=10_000 + 2 * ticks, idle=50_000 + 3 * ticks, iowait=ticks, guest=ticks)

    rapl = _rapl_at(energy, WATTS)

    def before_read() -> None:
        rapl()
        kernel()

    with _every(0.01, rapl):
        window = HostWindow(powercap_root=str(tmp_path / "powercap"), proc_root=str(proc))
        cpu, warnings, (lowest_s, highest_s) = _bracketed(window, 2.0, before_read)

    assert cpu["method"] == "rapl" and cpu["attribution"] == "cpu-time-share"
    assert cpu["cpu_time_s"] > 0.5  # the loop ran
    # the packages' energy: 100 W over the window, whose ends lie within the brackets however loaded the host
    device_j = cpu["device_energy_kwh"] * J_PER_KWH
    assert WATTS * lowest_s - 1e-3 <= device_j <= WATTS * highest_s + 1e-3
    assert cpu["share"] == pytest.approx(0.5, abs=0.025)
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(device_j * 0.5, rel=0.05)
    assert cpu["energy_kwh"] == pytest.approx(cpu["device_energy_kwh"] * cpu["share"])
    assert not any("whole-package" in w for w in warnings)


COMPETITOR = """
import os, sys, time
if os.fork():
    os._exit(0)  # the launcher exits: the spinner is reparented away, out of the test's process tree
print(os.getpid(), flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:
    pass
"""


def test_a_competing_process_on_the_real_host_lowers_the_share(tmp_path):
    """Real /proc/stat: another process (not in the tree: a child would count as the tree's) spins while
    the window's own loop does; the window gets a part of the packages' energy, not all of it."""
    energy = _package(tmp_path / "powercap")
    launcher = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True)
    assert launcher.stdout is not None
    competitor = int(launcher.stdout.readline())
    launcher.wait()
    launcher.stdout.close()
    try:
        parent = int(Path(f"/proc/{competitor}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent != os.getpid() and parent != launcher.pid  # outside the tree, or the test proves nothing
        time.sleep(0.2)  # its interpreter is up and spinning
        rapl = _rapl_at(energy, WATTS)
        with _every(0.01, rapl):
            window = HostWindow(powercap_root=str(tmp_path / "powercap"))
            cpu, _, (lowest_s, highest_s) = _bracketed(window, 1.0, rapl)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(competitor, signal.SIGKILL)
    assert cpu["attribution"] == "cpu-time-share"
    assert 0.05 < cpu["share"] < 0.8, cpu
    device_j = cpu["device_energy_kwh"] * J_PER_KWH
    assert WATTS * lowest_s - 1e-3 <= device_j <= WATTS * highest_s + 1e-3
    assert cpu["energy_kwh"] == pytest.approx(cpu["device_energy_kwh"] * cpu["share"])


def _window_in_a_process(powercap: str, go, results) -> None:  # type: ignore[no-untyped-def]
    """A forked process's own window over its own CPU-bound loop; puts (share, energy J, device J)."""
    go.wait(10)
    window = HostWindow(powercap_root=powercap)
    t0 = time.monotonic()
    window.start(t0)
    _spin(window, 1.0, samples=4)
    t1 = time.monotonic()
    cpu, _ram, _ = window.read(t1, t1 - t0)
    results.put((cpu.get("share"), cpu["energy_kwh"] * J_PER_KWH, cpu["device_energy_kwh"] * J_PER_KWH))


def test_two_concurrent_windows_share_the_packages_without_double_counting(tmp_path):
    """Two processes, each measuring its own loop over the same packages and the real /proc/stat: each
    gets a part, and together no more than the packages drew (where RAPL's whole figure counted it twice)."""
    energy = _package(tmp_path / "powercap")
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_window_in_a_process, args=(str(tmp_path / "powercap"), go, results)) for _ in range(2)]
    for w in workers:  # forked before the counter thread starts: no thread is copied into them
        w.start()
    try:
        with _every(0.01, _rapl_at(energy, WATTS)):
            go.set()
            got = [results.get(timeout=30) for _ in workers]
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
    shares = [g[0] for g in got]
    assert all(0.05 < s < 0.9 for s in shares), got
    assert sum(shares) <= 1.0 + 0.03, got
    assert sum(g[1] for g in got) <= max(g[2] for g in got) * 1.03, got


# -- RAM: PSS --------------------------------------------------------------------------------------


def test_pss_counts_a_mapping_shared_with_a_forked_child_once(tmp_path, monkeypatch):
    """200 MB written before fork in a shared mapping the child then reads: the tree's RSS counts them
    in both processes, its PSS once; the RAM energy follows PSS."""
    size = 200 * 1024 * 1024
    page = mmap.PAGESIZE
    shared = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS
    for i in range(0, size, page):
        shared[i] = 1
    monkeypatch.setattr(host, "PSS_FIRST_READ_S", 0.0)
    before = tree_sample(pss=True)
    assert before.pss_bytes is not None, before.pss_error
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: map every page in, say so, hold until the parent closes the pipe
        try:
            os.close(ready_r)
            os.close(hold_w)
            total = 0
            for i in range(0, size, page):
                total += shared[i]
            os.write(ready_w, b"1" if total == size // page else b"0")
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        assert os.read(ready_r, 1) == b"1"
        window = HostWindow(powercap_root=str(tmp_path / "no-rapl"), ram_w_per_gb=1.0)
        t0 = time.monotonic()
        window.start(t0)  # PSS_FIRST_READ_S is 0 here: read from the start, not after the first second
        time.sleep(0.2)
        window.sample(time.monotonic())
        time.sleep(0.2)
        t1 = time.monotonic()
        _cpu, ram, _ = window.read(t1, t1 - t0)
    finally:
        os.close(hold_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
        shared.close()
    shared_gb = size / 1e9
    assert ram["memory"] == "pss"
    # RSS: the child's mapping of the 200 MB (and of the parent's pages it inherited) is added in full
    assert ram["mean_rss_gb"] - before.rss_bytes / 1e9 > 0.9 * shared_gb, (ram, before)
    # PSS: the 200 MB, now shared by two, count half in each: the tree's total barely moves
    assert abs(ram["mean_pss_gb"] - before.pss_bytes / 1e9) < 0.25 * shared_gb, (ram, before)
    assert ram["mean_pss_gb"] > shared_gb
    assert ram["mean_rss_gb"] - ram["mean_pss_gb"] > 0.9 * shared_gb
    assert ram["energy_kwh"] * J_PER_KWH == pytest.approx(ram["mean_pss_gb"] * 1.0 * (t1 - t0))
    assert ram["mean_utilization_percent"] == pytest.approx(100 * ram["mean_pss_gb"] / ram["host_total_gb"])


def test_unreadable_pss_falls_back_to_rss(tmp_path, monkeypatch):
    def denied(pid: int) -> int:
        raise PermissionError(13, "Permission denied", f"/proc/{pid}/smaps_rollup")

    monkeypatch.setattr(host, "_linux_pss_bytes", denied)
    window = HostWindow(powercap_root=str(tmp_path), ram_w_per_gb=2.0)
    window.start(0.0)
    window.sample(1.0)
    _cpu, ram, _ = window.read(2.0, 2.0)
    assert ram["memory"] == "rss" and "mean_pss_gb" not in ram
    assert ram["energy_kwh"] * J_PER_KWH == pytest.approx(ram["mean_rss_gb"] * 2.0 * 2.0)


def test_pss_is_read_less_often_when_a_read_is_costly(tmp_path, monkeypatch):
    """PSS is read at a sample when the last read cost at most PSS_READ_BUDGET of the time since. A budget
    that makes any read cheap: at every 1 Hz sample from the first (not at the start: PSS_FIRST_READ_S); one
    that makes any read costly: only at the first, the later samples scaling their RSS by the last PSS / RSS
    ratio, the earlier one by the first read's. (The real budget's outcome depends on
    the tree's size: ~10 us per resident MB.)"""
    reads: list[bool] = []
    real = host.tree_sample

    def counting(root_pid: int | None = None, *, pss: bool = False) -> TreeSample:
        reads.append(pss)
        return real(root_pid, pss=pss)

    monkeypatch.setattr(host, "tree_sample", counting)
    for budget, expected in ((1.0, [False, True, True, True]), (1e-9, [False, True, False, False])):
        monkeypatch.setattr(host, "PSS_READ_BUDGET", budget)
        reads.clear()
        window = HostWindow(powercap_root=str(tmp_path))
        window.start(0.0)
        window.sample(1.0)
        window.sample(2.0)
        _cpu, ram, _ = window.read(3.0, 3.0)
        assert reads == expected
        assert ram["memory"] == "pss" and 0 < ram["mean_pss_gb"] <= ram["mean_rss_gb"] * 1.01
    # a window shorter than the first read says its RAM figure is RSS's
    window = HostWindow(powercap_root=str(tmp_path))
    window.start(0.0)
    _cpu, ram, _ = window.read(0.5, 0.5)
    assert ram["memory"] == "rss" and "mean_pss_gb" not in ram


def test_pss_read_cost_grows_with_the_trees_memory_but_stays_small():
    """A read with PSS costs 10-35 us per resident MB over a ~35 us stat walk (on the 2-core test machine:
    0.2 ms for an 18 MB Python process, 3-7 ms for 120-230 MB, 10-13 ms for 0.5-1.1 GB); the bound is
    loose enough for a loaded machine, tight enough to catch a read of the whole smaps file instead."""
    tree_sample(pss=True)
    costs, rss_mb = [], 0.0
    for _ in range(20):
        t0 = time.perf_counter()
        sample = tree_sample(pss=True)
        costs.append(time.perf_counter() - t0)
        rss_mb = sample.rss_bytes / 1e6
    assert sorted(costs)[len(costs) // 2] < 0.001 + 100e-6 * rss_mb
