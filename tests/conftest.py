"""Shared fixtures. `fake_gpu(config)` activates the simulated GPU (tests/fake_nvml) for one test."""

from __future__ import annotations

import pytest

import fake_nvml


@pytest.fixture
def fake_gpu():
    """Call with a FAKE_NVML_CONFIG text; returns a fake_nvml.FakeGPU (ground truth: true_energy_j)."""
    active: list[fake_nvml.FakeGPU] = []

    def configure(config: str) -> fake_nvml.FakeGPU:
        gpu = fake_nvml.activate(config)
        active.append(gpu)
        return gpu

    yield configure
    for gpu in reversed(active):
        gpu.deactivate()
