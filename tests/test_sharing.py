"""No double counting on a shared GPU (airflow_carbon/core/sharing.py, core/gpu.py): concurrent
``airflow-carbon measure`` windows (real processes, the real CLI) on one simulated GPU split its energy, so
that their sum is what the device drew; per-process utilisation, where the simulated NVML reports it, splits
by SM share; the registry ignores dead processes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_carbon.core.sharing import WindowEntry, WindowRegistry, equal_share, utilization_share

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
W = 300.0


# -- the rules ------------------------------------------------------------------------------------------


def _entry(key: str, opened: float, closed: float | None, devices=("GPU-a",)) -> WindowEntry:
    return WindowEntry(key, os.getpid(), 0, tuple(devices), opened, closed)


def test_the_equal_split_is_the_time_weighted_mean_of_one_over_the_windows_open():
    entries = [_entry("me", 0.0, None), _entry("b", 5.0, 15.0), _entry("c", 8.0, None), _entry("other-gpu", 0.0, None, ("GPU-b",))]
    assert equal_share(entries, "GPU-a", 0.0, 5.0) == (1.0, 1)  # alone
    share, most = equal_share(entries, "GPU-a", 4.0, 6.0)  # 1 s alone, 1 s with b
    assert share == pytest.approx((1 + 0.5) / 2) and most == 2
    share, most = equal_share(entries, "GPU-a", 7.0, 9.0)  # 1 s with b, 1 s with b and c
    assert share == pytest.approx((0.5 + 1 / 3) / 2) and most == 3
    assert equal_share(entries, "GPU-a", 16.0, 17.0) == (0.5, 2)  # b closed; c still there


def test_the_utilization_share_is_the_trees_share_of_sm_and_unknown_where_nvml_cannot_say():
    me, other = os.getpid(), os.getppid()
    assert utilization_share([(me, 30), (me, 30), (other, 40)], {me}) == pytest.approx(0.6)
    assert utilization_share([(other, 50)], {me}) == 0.0  # busy, but not us: nothing of this interval is ours
    assert utilization_share([], {me}) is None  # no process reported: unknown, never "nothing"
    assert utilization_share([(me, 0), (other, 0)], {me}) is None  # nobody busy: the equal split decides
    assert utilization_share([(4_000_000, 80)], {me}) is None  # no such pid here: another PID namespace


def test_the_registry_keeps_closed_windows_a_while_and_ignores_dead_processes(tmp_path):
    registry = WindowRegistry(tmp_path)
    key = registry.open(["GPU-a"], 10.0)
    (entry,) = registry.entries(11.0)
    assert entry.key == key and entry.devices == ("GPU-a",) and entry.closed_s is None and entry.pid == os.getpid()
    registry.close(key, 12.0)
    (entry,) = registry.entries(13.0)
    assert entry.closed_s == 12.0  # still seen by windows that shared the time before it closed
    # a window whose process died without closing: closed when its death is noticed, ignored from then on,
    # while the time it shared before stays shared (no window takes all of it)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_key = f"{int(dead.stdout)}_1_{10 * 10**9}_1"
    (tmp_path / "windows" / f"{dead_key}.open").write_text(json.dumps({"devices": ["GPU-a"]}))
    entries = {e.key: e for e in registry.entries(14.0)}
    assert set(entries) == {key, dead_key} and entries[dead_key].closed_s == 14.0
    assert (tmp_path / "windows" / f"{dead_key}.{14 * 10**9}.closed").exists()  # for other readers too
    # one that died before a window opens is closed at its opening: that window never shares with it
    gone_key = f"{int(dead.stdout)}_1_{15 * 10**9}_2"
    (tmp_path / "windows" / f"{gone_key}.open").write_text(json.dumps({"devices": ["GPU-a"]}))
    later = WindowRegistry(tmp_path).open(["GPU-a"], 20.0)
    entries = {e.key: e for e in WindowRegistry(tmp_path).entries(21.0)}
    assert entries[gone_key].closed_s == 20.0 and equal_share(list(entries.values()), "GPU-a", 20.0, 21.0)[0] == 1.0
    assert entries[later].closed_s is None
    WindowRegistry(tmp_path).close(later, 21.0)
    assert equal_share(list(entries.values()), "GPU-a", 11.0, 12.0) == (0.5, 2)  # not 1.0: it was open then
    assert registry.entries(21.0 + 61.0) == []  # closed over a minute ago: pruned


# -- real windows on one simulated GPU ------------------------------------------------------------------


def _measure(state_dir: Path, out: Path, seconds: float, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "airflow_carbon", "measure", "--state-dir", str(state_dir), "--g-per-kwh", "100",
           "-o", str(out), "--", "sleep", str(seconds)]
    return subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _windows(tmp_path: Path, gpu, plan: list[tuple[float, float]]) -> tuple[list[dict], float]:
    """Run one measure window per (start delay s, length s) of ``plan``; their records and the device's
    energy (J) over their union."""
    procs, t0 = [], time.monotonic()
    for k, (delay, seconds) in enumerate(plan):
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        procs.append(_measure(tmp_path / "state", tmp_path / f"w{k}.json", seconds, gpu.env))
    for p in procs:
        assert p.wait(timeout=60) == 0
    records = [json.loads((tmp_path / f"w{k}.json").read_text()) for k in range(len(plan))]
    return records, gpu.true_energy_j(0, t0, time.monotonic())


def _span(record: dict) -> tuple[float, float]:
    from datetime import datetime

    def unix(s: str) -> float:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    return unix(record["started_at"]), unix(record["ended_at"])


@pytest.mark.parametrize("plan", [
    pytest.param([(0.0, 6.0), (3.0, 6.0)], id="two-overlapping-3-of-6-s"),
    pytest.param([(0.0, 4.0), (0.0, 4.0), (0.0, 4.0)], id="three-fully-overlapping"),
    pytest.param([(0.0, 6.0), (1.5, 2.0), (2.5, 3.0)], id="three-partly-overlapping"),
])
def test_concurrent_windows_split_the_gpu_and_add_up_to_what_it_drew(tmp_path, fake_gpu, plan):
    gpu = fake_gpu(f"count=1; power=const:{W:g}")
    records, _ = _windows(tmp_path, gpu, plan)
    entries = [r["gpus"][0] for r in records]
    spans = [_span(r) for r in records]
    union = max(b for _, b in spans) - min(a for a, _ in spans)
    attributed = sum(e["energy_j"] for e in entries)
    assert attributed == pytest.approx(W * union, rel=0.01)  # what the device drew while any window was open
    for e, (a, b) in zip(entries, spans, strict=True):
        assert e["attribution"] == "equal-split" and e["concurrent_windows"] == max(
            sum(1 for c, d in spans if c < t <= d) for t in (a + 0.01, b - 0.01, *(x + 0.01 for x, _ in spans if a < x < b)))
        assert e["device_energy_j"] == pytest.approx(W * (b - a), rel=0.01)  # the device's figure, kept
        # the expected share: time-weighted 1/n over the window, n from the windows' own spans
        cuts = sorted({a, b, *(t for s in spans for t in s if a < t < b)})
        expected = sum((t1 - t0) / sum(1 for c, d in spans if c <= (t0 + t1) / 2 < d) for t0, t1 in itertools.pairwise(cuts))
        assert e["energy_j"] == pytest.approx(W * expected, rel=0.02)
        assert e["share"] == pytest.approx(e["energy_j"] / e["device_energy_j"])


def test_a_window_alone_keeps_the_devices_exact_figure(tmp_path, fake_gpu):
    gpu = fake_gpu(f"count=1; power=const:{W:g}")
    (record,), _ = _windows(tmp_path, gpu, [(0.0, 1.5)])
    (entry,) = record["gpus"]
    assert entry["attribution"] == "exclusive" and entry["share"] == 1.0 and entry["concurrent_windows"] == 1
    assert entry["energy_j"] == entry["device_energy_j"] == pytest.approx(W * record["duration_s"], rel=0.01)


def test_per_process_utilization_splits_by_sm_share_and_leaves_others_their_part(tmp_path, fake_gpu):
    util = tmp_path / "proc_util.txt"
    gpu = fake_gpu(f"count=1; power=const:{W:g}; proc_util={util}")
    state = tmp_path / "state"
    a = _measure(state, tmp_path / "a.json", 4.0, gpu.env)
    b = _measure(state, tmp_path / "b.json", 4.0, gpu.env)
    # NVML's per-process samples: the two windows' processes at 60 % and 20 %, an untracked process at 20 %
    util.write_text(f"{a.pid} 60\n{b.pid} 20\n{os.getpid()} 20\n")
    assert a.wait(timeout=60) == 0 and b.wait(timeout=60) == 0
    ea, eb = (json.loads((tmp_path / f"{n}.json").read_text())["gpus"][0] for n in "ab")
    assert ea["attribution"] == eb["attribution"] == "utilization"
    # the first ~1 s interval may precede the samples (an equal split): every later one is by SM share
    assert 0.55 <= ea["share"] <= 0.61 and 0.19 <= eb["share"] <= 0.26
    assert ea["energy_j"] + eb["energy_j"] < 0.85 * max(ea["device_energy_j"], eb["device_energy_j"])  # the untracked part
