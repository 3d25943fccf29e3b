"""CPU and RAM: RAPL where readable (a powercap tree laid out as the kernel does), estimates otherwise.
The split of RAPL's energy among processes and PSS are tested in test_host_attribution.py."""

import os
import subprocess
import sys
import time

import pytest

from airflow_carbon.core.host import HostWindow
from airflow_carbon.core.units import J_PER_KWH

pytestmark = pytest.mark.unit


def _zone(root, name, zone_name, energy_uj, max_uj):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(zone_name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_sums_packages_and_handles_counter_wrap(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 262_000_000_000, 262_143_328_850)
    p1 = _zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000, 262_143_328_850)
    _zone(tmp_path, "intel-rapl:0:0", "core", 1, 10)  # sub-zone: inside package-0's figure, not added
    _zone(tmp_path, "intel-rapl:2", "psys", 1, 10)  # not a CPU package
    window = HostWindow(powercap_root=str(tmp_path))
    window.start(0.0)
    (p0 / "energy_uj").write_text("100000000\n")  # wrapped: 143_328_850 + 100_000_000 uJ
    window.sample(1.0)
    (p0 / "energy_uj").write_text("150000000\n")
    (p1 / "energy_uj").write_text("25000000\n")
    cpu, _ram, warnings = window.read(2.0, 2.0)
    expected_j = (143_328_850 + 150_000_000 + 20_000_000) / 1e6
    assert cpu["method"] == "rapl" and cpu["packages"] == 2
    # the packages' whole energy; the window's part of it is its share of the host's busy CPU time
    assert cpu["attribution"] == "cpu-time-share"
    assert cpu["device_energy_kwh"] * J_PER_KWH == pytest.approx(expected_j)
    assert 0.0 <= cpu["share"] <= 1.0
    assert cpu["energy_kwh"] == pytest.approx(cpu["device_energy_kwh"] * cpu["share"])
    assert not any("whole-package" in w for w in warnings)


def test_rapl_without_proc_stat_is_the_whole_package_figure_and_says_so(tmp_path):
    p0 = _zone(tmp_path / "powercap", "intel-rapl:0", "package-0", 1_000_000, 262_143_328_850)
    window = HostWindow(powercap_root=str(tmp_path / "powercap"), proc_root=str(tmp_path / "no-proc"))
    window.start(0.0)
    (p0 / "energy_uj").write_text("31000000\n")
    cpu, _ram, warnings = window.read(1.0, 1.0)
    assert cpu["method"] == "rapl" and cpu["energy_kwh"] * J_PER_KWH == pytest.approx(30.0)
    assert "attribution" not in cpu and "share" not in cpu and "device_energy_kwh" not in cpu
    assert any("whole-package" in w and "no-proc/stat is unreadable" in w for w in warnings)


def test_unreadable_rapl_falls_back_to_an_estimate_that_says_why(tmp_path):
    window = HostWindow(powercap_root=str(tmp_path / "absent"), cpu_w_per_core=10.0)
    window.start(time.monotonic())
    cpu, ram, warnings = window.read(time.monotonic(), 0.1)
    assert cpu["method"] == "estimated" and cpu["w_per_core"] == 10.0
    assert cpu["attribution"] == "process-tree" and "share" not in cpu
    assert ram["method"] == "estimated"
    assert any("estimated" in w and "does not exist" in w for w in warnings)


def test_estimate_counts_a_child_process_cpu_time(tmp_path):
    burn = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.6: pass\n"
    window = HostWindow(powercap_root=str(tmp_path), cpu_w_per_core=10.0)
    t0 = time.monotonic()
    window.start(t0)
    subprocess.run([sys.executable, "-c", burn], check=True)
    t1 = time.monotonic()
    cpu, _ram, _ = window.read(t1, t1 - t0)
    assert cpu["cpu_time_s"] >= 0.6
    assert cpu["energy_kwh"] * J_PER_KWH == pytest.approx(cpu["cpu_time_s"] * 10.0)
    # utilisation: the tree's CPU time over every logical CPU of the host, as CodeCarbon's % is
    assert cpu["logical_cpus"] == os.cpu_count()
    assert cpu["mean_utilization_percent"] == pytest.approx(100 * cpu["cpu_time_s"] / ((t1 - t0) * os.cpu_count()))


def test_ram_follows_the_process_tree_not_the_host(tmp_path):
    hold = "import time\nb=bytearray(400*1024*1024)\nfor i in range(0,len(b),4096): b[i]=1\ntime.sleep(1.5)\n"
    window = HostWindow(powercap_root=str(tmp_path), ram_w_per_gb=1.0)
    t0 = time.monotonic()
    window.start(t0)
    child = subprocess.Popen([sys.executable, "-c", hold])
    time.sleep(1.0)
    window.sample(time.monotonic())  # the child is alive and holds 400 MB
    child.wait()
    t1 = time.monotonic()
    _cpu, ram, _ = window.read(t1, t1 - t0)
    import psutil

    host_gb = psutil.virtual_memory().used / 1e9
    assert 0.1 < ram["mean_rss_gb"] < min(host_gb, 2.0)
    # the child's 400 MB are its own: PSS (what the energy uses where readable) sees them as RSS does
    assert ram["memory"] == "pss"
    assert 0.1 < ram["mean_pss_gb"] <= ram["mean_rss_gb"] * 1.05
    assert ram["energy_kwh"] * J_PER_KWH == pytest.approx(ram["mean_pss_gb"] * 1.0 * (t1 - t0))
    assert ram["host_total_gb"] == psutil.virtual_memory().total / 1e9  # the machine's RAM, as CodeCarbon's
    assert ram["mean_utilization_percent"] == pytest.approx(100 * ram["mean_pss_gb"] / ram["host_total_gb"])
