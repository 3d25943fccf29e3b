"""The fake libnvidia-ml.so.1 (carbon_testing.fake_nvml) seen through the real pynvml."""

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from carbon_testing.fake_nvml import ENV_VAR, LIB_NAME, activate, build

pytestmark = pytest.mark.unit

pynvml = pytest.importorskip("pynvml")

if shutil.which(os.environ.get("CC", "cc")) is None:
    pytest.skip("no C compiler to build the fake NVML", allow_module_level=True)


@pytest.fixture
def fake():
    """Activate the default config and initialise NVML; undo both afterwards."""
    gpu = activate("")
    pynvml.nvmlInit()
    try:
        yield gpu
    finally:
        gpu.set_config("")  # leave fault configs so shutdown succeeds
        while True:  # drop every init the test left behind
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError_Uninitialized:
                break
        gpu.deactivate()


def handle(i):
    return pynvml.nvmlDeviceGetHandleByIndex(i)


def test_build_is_cached_and_installs_nvidia_smi():
    d = build()
    lib = d / LIB_NAME
    mtime = lib.stat().st_mtime_ns
    assert build() == d and lib.stat().st_mtime_ns == mtime
    assert os.access(d / "nvidia-smi", os.X_OK)


def test_defaults(fake):
    assert pynvml.nvmlDeviceGetCount() == 1
    assert pynvml.nvmlSystemGetDriverVersion() == "560.35.03"
    assert pynvml.nvmlSystemGetCudaDriverVersion_v2() == 12060
    h = handle(0)
    assert pynvml.nvmlDeviceGetName(h) == "NVIDIA H200"
    assert pynvml.nvmlDeviceGetUUID(h) == "GPU-fa4e0000-0000-4000-8000-000000000000"
    assert pynvml.nvmlDeviceGetIndex(h) == 0
    assert pynvml.nvmlDeviceGetCudaComputeCapability(h) == (9, 0)
    assert pynvml.nvmlDeviceGetEnforcedPowerLimit(h) == 700000
    assert pynvml.nvmlDeviceGetPowerManagementLimit(h) == 700000
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 100000
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 14  # round(100*100/700)
    assert pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU) == 45
    assert pynvml.nvmlDeviceGetComputeMode(h) == 0
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(h) == []
    assert pynvml.nvmlDeviceGetGraphicsRunningProcesses_v2(h) == []
    mem = pynvml.nvmlDeviceGetMemoryInfo(h)
    assert mem.total == 143771 << 20 and mem.free + mem.used == mem.total
    mem2 = pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
    assert mem2.total == mem.total
    pci = pynvml.nvmlDeviceGetPciInfo(h)
    assert (pci.busId, pci.bus, pci.domain) == ("00000000:10:00.0", 0x10, 0)
    ext = pynvml.nvmlPciInfoExt_v1_t(version=pynvml.nvmlPciInfoExt_v1)
    pynvml.nvmlDeviceGetPciInfoExt(h, pynvml.byref(ext))
    assert (ext.busId, ext.bus) == ("00000000:10:00.0", 0x10)
    assert pynvml.nvmlDeviceGetMigMode(h) == [0, 0]
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_NOT_SUPPORTED) == "Not Supported"
    assert pynvml.nvmlErrorString(pynvml.NVML_ERROR_GPU_IS_LOST) == "GPU is lost"


def test_counts_names_uuids_per_gpu_overrides(fake):
    fake.set_config(
        "name = NVIDIA A100-SXM4-80GB  # a comment; not an entry\n"
        "count=3; gpu2.name=NVIDIA H100 80GB HBM3; gpu2.uuid=GPU-custom\n"
        "gpu1.pci=00000000:9A:00.0; gpu1.cc=8.0; power_limit_w=400"
    )
    assert pynvml.nvmlDeviceGetCount() == 3
    names = [pynvml.nvmlDeviceGetName(handle(i)) for i in range(3)]
    assert names == ["NVIDIA A100-SXM4-80GB"] * 2 + ["NVIDIA H100 80GB HBM3"]
    uuids = [pynvml.nvmlDeviceGetUUID(handle(i)) for i in range(3)]
    assert uuids[2] == "GPU-custom" and len(set(uuids)) == 3
    assert pynvml.nvmlDeviceGetPciInfo(handle(1)).bus == 0x9A
    assert pynvml.nvmlDeviceGetPciInfo(handle(2)).busId == "00000000:30:00.0"
    assert pynvml.nvmlDeviceGetCudaComputeCapability(handle(1)) == (8, 0)
    assert pynvml.nvmlDeviceGetEnforcedPowerLimit(handle(2)) == 400000
    for i, u in enumerate(uuids):
        assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByUUID(u)) == i
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetHandleByUUID("GPU-nope")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        handle(3)
    fake.set_config("count=0")
    assert pynvml.nvmlDeviceGetCount() == 0


def test_config_from_file_and_unknown_key_warning(fake, tmp_path, capfd):
    cfg = tmp_path / "gpu.conf"
    cfg.write_text("# two GPUs\ncount = 2\n\nbogus_key = 1\ngpu1.name = Fake GPU\n")
    fake.set_config(cfg)  # a path object means "@path"
    assert os.environ[ENV_VAR] == "@" + str(cfg)
    assert pynvml.nvmlDeviceGetCount() == 2
    assert pynvml.nvmlDeviceGetName(handle(1)) == "Fake GPU"
    pynvml.nvmlDeviceGetCount()  # same config string: no re-parse, no second warning
    err = capfd.readouterr().err
    assert err.count("bogus_key") == 1


def test_config_change_in_process_and_stale_handle(fake, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "count=3")
    h2 = handle(2)
    assert pynvml.nvmlDeviceGetName(h2) == "NVIDIA H200"
    monkeypatch.setenv(ENV_VAR, "count=1")
    assert pynvml.nvmlDeviceGetCount() == 1
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetName(h2)
    monkeypatch.setenv(ENV_VAR, "count=3; name=Other")
    assert pynvml.nvmlDeviceGetName(h2) == "Other"  # same pointer, valid again


def test_counter_equals_ground_truth(fake):
    fake.set_config("count=2; power=const:250; gpu1.power=square:100:300:0.01; counter_base_mj=5000")
    for i in range(2):
        h = handle(i)
        ta = time.monotonic()
        c = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
        tb = time.monotonic()
        # trace time 0 is CLOCK_MONOTONIC 0 (epoch=0)
        lo = 5000 + math.floor(1000 * fake.true_energy_j(i, 0.0, ta))
        hi = 5000 + math.floor(1000 * fake.true_energy_j(i, 0.0, tb))
        assert lo <= c <= hi
        assert fake.counter_mj(i, ta) == lo and fake.counter_mj(i, tb) == hi
    # closed-form ground truth
    assert fake.true_energy_j(0, 10.0, 12.0) == pytest.approx(500.0)
    assert fake.true_energy_j(1, 1000.0, 1000.1) == pytest.approx(20.0)  # 10 periods, mean 200 W
    assert fake.true_energy_j(1, 1000.0, 1000.0025) == pytest.approx(0.75)  # in the HIGH half
    assert math.isnan(fake.true_energy_j(2, 0.0, 1.0))


def test_power_follows_trace(fake, tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("# t watts\n0 100\n5 200\n20 300\n")
    now = time.monotonic()
    fake.set_config(f"power=file:{trace}; epoch={now - 10}")
    h = handle(0)
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 200000
    assert fake.power_w(0, now) == 200.0
    e = now - 10
    assert fake.power_w(0, e - 50) == 100.0 and fake.power_w(0, e + 1e6) == 300.0
    assert fake.true_energy_j(0, e - 1, e + 21) == pytest.approx(100 * 6 + 200 * 15 + 300 * 1)
    fake.set_config(f"power=file:{trace}; epoch={now - 30}")
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 300000
    # square wave: HIGH during the first half of each period
    now = time.monotonic()
    fake.set_config(f"power=square:50:630:100; epoch={now}")
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 630000
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 90
    fake.set_config(f"power=square:50:630:100; epoch={now - 60}")
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 50000
    fake.set_config("power=const:123.4567")
    assert pynvml.nvmlDeviceGetPowerUsage(h) == 123457


def test_mig_enumeration(fake):
    fake.set_config("count=2; gpu1.mig=3")
    g0, g1 = handle(0), handle(1)
    assert pynvml.nvmlDeviceGetMigMode(g0) == [0, 0]
    assert pynvml.nvmlDeviceGetMigMode(g1) == [1, 1]
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(g1) == 3
    assert pynvml.nvmlDeviceIsMigDeviceHandle(g1).value == 0
    migs = [pynvml.nvmlDeviceGetMigDeviceHandleByIndex(g1, k) for k in range(3)]
    uuids = [pynvml.nvmlDeviceGetUUID(m) for m in migs]
    assert all(u.startswith("MIG-") for u in uuids) and len(set(uuids)) == 3
    gpu_uuids = {pynvml.nvmlDeviceGetUUID(g) for g in (g0, g1)}
    assert not gpu_uuids & set(uuids)
    for m, u in zip(migs, uuids, strict=True):
        assert pynvml.nvmlDeviceIsMigDeviceHandle(m).value == 1
        assert pynvml.nvmlDeviceGetName(m) == "NVIDIA H200 MIG 1g.18gb"
        parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(m)
        assert pynvml.nvmlDeviceGetUUID(parent) == pynvml.nvmlDeviceGetUUID(g1)
        assert pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByUUID(u)) == u
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetPowerUsage(m)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetTotalEnergyConsumption(m)
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(g1, 3)
    with pytest.raises(pynvml.NVMLError):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(g0, 0)
    fake.set_config("count=2; gpu1.mig=1")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetName(migs[2])  # that MIG device no longer exists


def test_fault_unavailable_and_uninitialized(fake):
    fake.set_config("unavailable=1")
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded) as exc:
        pynvml.nvmlInit()
    assert str(exc.value) == "Driver Not Loaded"
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        pynvml.nvmlDeviceGetCount()
    fake.set_config("")
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        for _ in range(1000):  # the fixture's init, and any other test's left over
            pynvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()
    pynvml.nvmlInit()
    pynvml.nvmlInit()
    pynvml.nvmlShutdown()
    assert pynvml.nvmlDeviceGetCount() == 1  # refcounted


def test_fault_unset_config_means_no_driver(fake):
    fake.deactivate()
    assert ENV_VAR not in os.environ
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        pynvml.nvmlDeviceGetCount()


def test_fault_gpu_lost(fake):
    now = time.monotonic()
    fake.set_config(f"count=2; epoch={now - 100}; gpu1.lost_at=1e9")
    h1 = handle(1)
    assert pynvml.nvmlDeviceGetPowerUsage(h1) == 100000
    fake.set_config(f"count=2; epoch={now - 100}; gpu1.lost_at=50")
    for fn in (pynvml.nvmlDeviceGetPowerUsage, pynvml.nvmlDeviceGetTotalEnergyConsumption,
               pynvml.nvmlDeviceGetName, pynvml.nvmlDeviceGetUUID):
        with pytest.raises(pynvml.NVMLError_GpuIsLost) as exc:
            fn(h1)
    assert str(exc.value) == "GPU is lost"
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        handle(1)
    assert pynvml.nvmlDeviceGetPowerUsage(handle(0)) == 100000


def test_fault_counter_unsupported_and_reset(fake):
    fake.set_config("counter=0")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle(0))
    assert fake.counter_mj(0, time.monotonic()) is None
    assert pynvml.nvmlDeviceGetPowerUsage(handle(0)) == 100000
    now = time.monotonic()
    fake.set_config(f"power=const:10; epoch={now - 100}; reset_at=1e9")
    before = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle(0))
    assert before >= 1000000 + 100 * 10 * 1000
    fake.set_config(f"power=const:10; epoch={now - 100}; reset_at=90")
    after = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle(0))
    t = time.monotonic()
    assert after < before  # went backwards, as after a driver reload
    assert 100000 <= after <= math.floor(1000 * fake.true_energy_j(0, now - 10, t))


def test_background_sampling_thread(fake):
    fake.set_config("count=2; power=square:100:300:0.001")
    handles = [handle(0), handle(1)]
    stop = threading.Event()
    errors, samples = [], []

    def sampler():
        try:
            while not stop.is_set():
                samples.append(pynvml.nvmlDeviceGetPowerUsage(handles[1]))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    th = threading.Thread(target=sampler)
    th.start()
    last = 0
    deadline = time.monotonic() + 0.2
    i = 0
    while time.monotonic() < deadline:
        c = pynvml.nvmlDeviceGetTotalEnergyConsumption(handles[0])
        assert c >= last
        last = c
        i += 1
        fake.set_config(f"count=2; power=square:100:300:0.001; name=n{i % 5}")  # re-parses
    stop.set()
    th.join()
    assert not errors and samples and set(samples) <= {100000, 300000}


def test_child_process_sees_gpu(fake):
    fake.set_config("count=2; power=const:321")
    code = (
        "import pynvml, json; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(1);"
        "print(json.dumps([pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetName(h),"
        " pynvml.nvmlDeviceGetUUID(h), pynvml.nvmlDeviceGetPowerUsage(h),"
        " pynvml.nvmlDeviceGetTotalEnergyConsumption(h)]))"
    )
    ta = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **fake.env},
                         capture_output=True, text=True, check=True).stdout
    tb = time.monotonic()
    count, name, uuid, power, counter = json.loads(out)
    assert (count, name, power) == (2, "NVIDIA H200", 321000)
    assert uuid == "GPU-fa4e0001-0000-4000-8000-000000000001"
    # the child shares CLOCK_MONOTONIC, hence the same trace
    assert fake.counter_mj(1, ta) <= counter <= fake.counter_mj(1, tb)


def test_nvidia_smi(fake):
    fake.set_config("count=2; power=const:250.5; gpu1.name=Other")
    assert shutil.which("nvidia-smi") == str(fake.lib_dir / "nvidia-smi")
    assert subprocess.run(["nvidia-smi", "--help"], capture_output=True).returncode == 0
    ta = time.monotonic()
    res = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,uuid,power.draw,energy.consumption",
         "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True)
    tb = time.monotonic()
    rows = [[f.strip() for f in line.split(",")] for line in res.stdout.splitlines()]
    assert [r[:3] for r in rows] == [
        ["NVIDIA H200", "GPU-fa4e0000-0000-4000-8000-000000000000", "250.50"],
        ["Other", "GPU-fa4e0001-0000-4000-8000-000000000001", "250.50"],
    ]
    assert fake.counter_mj(0, ta) / 1000 - 0.001 <= float(rows[0][3]) <= fake.counter_mj(0, tb) / 1000
    res = subprocess.run(["nvidia-smi", "--query-gpu=power.draw,pci.bus_id", "--format=csv"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.splitlines() == ["power.draw [W], pci.bus_id", "250.50 W, 00000000:10:00.0", "250.50 W, 00000000:20:00.0"]
    res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True)
    assert res.stdout.startswith("GPU 0: NVIDIA H200 (UUID: GPU-fa4e0000-")


CODECARBON_SCRIPT = r"""
import json, time
from codecarbon.core import gpu
from codecarbon import OfflineEmissionsTracker
devices = gpu.AllGPUDevices()
info = {"available": gpu.PYNVML_AVAILABLE, "nvidia_smi": gpu.is_nvidia_system(),
        "static": devices.get_gpu_static_info(),
        "details": devices.get_gpu_details()}
tracker = OfflineEmissionsTracker(country_iso_code="FRA", measure_power_secs=1,
                                  save_to_file=False, log_level="error")
tracker.start()
a = time.monotonic()
time.sleep(0.2)
b = time.monotonic()
tracker.stop()
info.update(gpu_energy_kwh=tracker.final_emissions_data.gpu_energy, a=a, b=b)
print(json.dumps(info))
"""


def test_codecarbon_sees_fake_gpus(fake):
    pytest.importorskip("codecarbon")
    # CodeCarbon initialises NVML at import time: run it in a fresh process
    fake.set_config("count=2; power=const:300; gpu1.power=const:100")
    res = subprocess.run([sys.executable, "-c", CODECARBON_SCRIPT], env={**os.environ, **fake.env},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.splitlines()[-1])
    assert info["available"] and info["nvidia_smi"]
    assert [s["name"] for s in info["static"]] == ["NVIDIA H200"] * 2
    assert info["static"][1]["uuid"] == "GPU-fa4e0001-0000-4000-8000-000000000001"
    assert info["static"][0]["power_limit"] == 700.0
    assert [d["power_usage"] for d in info["details"]] == [300.0, 100.0]
    # energy counter delta between start() and stop(): at least the sleep
    joules = info["gpu_energy_kwh"] * 3.6e6
    truth = fake.true_energy_j(0, info["a"], info["b"]) + fake.true_energy_j(1, info["a"], info["b"])
    assert truth <= joules < truth + 400 * 1.0  # < 1 s of start/stop overhead
