"""A simulated NVIDIA GPU at the NVML library boundary, for tests and benchmarks.

``fake_nvml.c`` (its header comment documents the configuration format) is
compiled into a fake ``libnvidia-ml.so.1`` which the real, unmodified
``pynvml`` and CodeCarbon load.  Typical use::

    from carbon_testing.fake_nvml import activate

    with activate("count=2; power=square:100:300:0.2") as gpu:
        import pynvml
        pynvml.nvmlInit()
        ...
        joules = gpu.true_energy_j(0, t0, t1)   # t0, t1 from time.monotonic()
        subprocess.run([...], env={**os.environ, **gpu.env})

Stdlib + ctypes only (no pytest), so benchmark scripts can use it too.
Once preloaded, the library stays loaded in this process: after
``deactivate()`` (FAKE_NVML_CONFIG unset) it behaves like a machine without
an NVIDIA driver (every call returns NVML_ERROR_DRIVER_NOT_LOADED).
"""

from __future__ import annotations

import ctypes
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .. import REPO

__all__ = ["ENV_VAR", "LIB_NAME", "FakeGPU", "activate", "build", "deactivate"]

LIB_NAME = "libnvidia-ml.so.1"
ENV_VAR = "FAKE_NVML_CONFIG"
_HERE = Path(__file__).resolve().parent
_SOURCE = _HERE / "fake_nvml.c"
_SMI_SCRIPT = _HERE / "nvidia-smi"
DEFAULT_OUT = REPO / "build" / "fake-nvml"

_lib: ctypes.CDLL | None = None  # the preloaded library (one per process)
_active: list[FakeGPU] = []  # activation stack, for deactivate()


def build(out_dir: Path | None = None) -> Path:
    """Compile the fake library and install the ``nvidia-smi`` wrapper.

    Into ``<repo>/build/fake-nvml/`` by default; the library is rebuilt only
    when missing or older than ``fake_nvml.c``.  Returns the directory.
    """
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    lib = out / LIB_NAME
    if not lib.exists() or lib.stat().st_mtime < _SOURCE.stat().st_mtime:
        tmp = out / f".{LIB_NAME}.{os.getpid()}.tmp"
        cmd = [
            os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-Wall",
            f"-Wl,-soname,{LIB_NAME}", "-o", str(tmp), str(_SOURCE), "-lm",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"building the fake NVML failed: {' '.join(cmd)}\n{res.stderr}")
        os.replace(tmp, lib)  # atomic: safe with parallel test workers
    # nvidia-smi: a shell wrapper running the Python script with this
    # interpreter (which has pynvml) and the fake library on its path.
    wrapper = out / "nvidia-smi"
    text = (
        "#!/bin/sh\n"
        f"LD_LIBRARY_PATH={shlex.quote(str(out))}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n"
        "export LD_LIBRARY_PATH\n"
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(_SMI_SCRIPT))} \"$@\"\n"
    )
    if not wrapper.exists() or wrapper.read_text() != text:
        tmp = out / f".nvidia-smi.{os.getpid()}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, wrapper)
    return out


def _prepend(var: str, value: str) -> str:
    old = os.environ.get(var)
    parts = [value] + [p for p in (old or "").split(os.pathsep) if p and p != value]
    return os.pathsep.join(parts)


def _preload(lib_dir: Path) -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(lib_dir / LIB_NAME), mode=ctypes.RTLD_GLOBAL)
        u, d = ctypes.c_uint, ctypes.c_double
        lib.fake_nvml_true_energy_j.argtypes = [u, d, d]
        lib.fake_nvml_power_w.argtypes = [u, d]
        lib.fake_nvml_counter_mj.argtypes = [u, d]
        for fn in (lib.fake_nvml_true_energy_j, lib.fake_nvml_power_w, lib.fake_nvml_counter_mj):
            fn.restype = d
        _lib = lib
    return _lib


class FakeGPU:
    """Handle on an activated fake configuration (also a context manager).

    ``lib_dir``: directory holding the library and ``nvidia-smi``.
    ``env``: the variables to give a child process (``{**os.environ, **env}``).
    The ground-truth queries use the configuration current in ``os.environ``
    (the same one NVML calls see).
    """

    def __init__(self, config: str, lib_dir: Path) -> None:
        self.config = config
        self.lib_dir = lib_dir
        self._saved = {k: os.environ.get(k) for k in (ENV_VAR, "LD_LIBRARY_PATH", "PATH")}
        self.env = {
            ENV_VAR: config,
            "LD_LIBRARY_PATH": _prepend("LD_LIBRARY_PATH", str(lib_dir)),
            "PATH": _prepend("PATH", str(lib_dir)),
        }
        self._lib = _preload(lib_dir)
        os.environ.update(self.env)

    def set_config(self, config: str) -> None:
        """Switch to another configuration (NVML picks it up on its next call)."""
        self.config = self.env[ENV_VAR] = os.environ[ENV_VAR] = _config_value(config)

    def true_energy_j(self, index: int, t0: float, t1: float) -> float:
        """Exact energy (J) GPU ``index`` used between two time.monotonic() instants."""
        return self._lib.fake_nvml_true_energy_j(index, t0, t1)

    def power_w(self, index: int, t: float) -> float:
        """Trace power (W) of GPU ``index`` at time.monotonic() instant ``t``."""
        return self._lib.fake_nvml_power_w(index, t)

    def counter_mj(self, index: int, t: float) -> int | None:
        """Energy counter (mJ) GPU ``index`` reads at instant ``t``; None if unsupported."""
        v = self._lib.fake_nvml_counter_mj(index, t)
        return None if v < 0 else int(v)

    def deactivate(self) -> None:
        """Restore FAKE_NVML_CONFIG, LD_LIBRARY_PATH and PATH as they were."""
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self in _active:
            _active.remove(self)

    def __enter__(self) -> FakeGPU:
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()


def _config_value(config: str | os.PathLike) -> str:
    return config if isinstance(config, str) else "@" + os.fspath(config)


def activate(config: str | os.PathLike = "", out_dir: Path | None = None) -> FakeGPU:
    """Build if needed, export the configuration and preload the library.

    ``config``: the configuration text, ``"@/path"``, or a path object (read
    from that file).  Sets FAKE_NVML_CONFIG and prepends the library
    directory to LD_LIBRARY_PATH (children) and PATH (nvidia-smi) in
    os.environ, and preloads the library into this process (once; later
    activations reuse the first one loaded).
    """
    gpu = FakeGPU(_config_value(config), build(out_dir))
    _active.append(gpu)
    return gpu


def deactivate() -> None:
    """Undo the most recent activate() still in effect (no-op if none)."""
    if _active:
        _active[-1].deactivate()
