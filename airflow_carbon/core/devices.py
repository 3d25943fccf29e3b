"""Which GPUs a task can see: CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, parsed without touching NVML."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEVICE_ORDERS = ("FASTEST_FIRST", "PCI_BUS_ID")

_UUID_RE = re.compile(r"^(GPU-|MIG-(GPU-)?)[0-9A-Fa-f-]+(/\d+/\d+)?$")


@dataclass(frozen=True)
class DeviceRef:
    """One entry of CUDA_VISIBLE_DEVICES: a CUDA index, or a GPU/MIG UUID (a unique prefix is allowed)."""

    index: int | None = None
    uuid: str | None = None

    @property
    def is_mig(self) -> bool:
        return bool(self.uuid and self.uuid.upper().startswith("MIG-"))

    def __str__(self) -> str:
        return str(self.index) if self.index is not None else str(self.uuid)


@dataclass(frozen=True)
class VisibleDevices:
    """The parsed selection: ``refs is None`` means every GPU; an empty tuple means none."""

    refs: tuple[DeviceRef, ...] | None
    order: str = "FASTEST_FIRST"

    @property
    def all(self) -> bool:
        return self.refs is None


def parse_visible_devices(value: str | None, order: str | None = None) -> VisibleDevices:
    """Parse CUDA_VISIBLE_DEVICES (``value``) and CUDA_DEVICE_ORDER (``order``).

    Accepted: unset (all GPUs); empty (no GPU); a comma-separated list of CUDA indices (``0,2``),
    ``GPU-<uuid>`` or ``MIG-<uuid>`` (also the older ``MIG-GPU-<uuid>/<gi>/<ci>``). Raises ValueError
    naming the bad entry and what is accepted.
    """
    order_name = (order or "FASTEST_FIRST").strip().upper()
    if order_name not in DEVICE_ORDERS:
        raise ValueError(f"CUDA_DEVICE_ORDER={order!r} is not supported; expected one of {', '.join(DEVICE_ORDERS)}")
    if value is None:
        return VisibleDevices(None, order_name)
    text = value.strip()
    if text == "":
        return VisibleDevices((), order_name)
    refs: list[DeviceRef] = []
    for raw in text.split(","):
        entry = raw.strip()
        if entry.lstrip("-").isdigit():
            index = int(entry)
            if index < 0:
                # CUDA stops at the first invalid entry: a negative index hides every GPU after it.
                break
            ref = DeviceRef(index=index)
        elif _UUID_RE.match(entry):
            ref = DeviceRef(uuid=entry)
        else:
            raise ValueError(
                f"CUDA_VISIBLE_DEVICES={value!r}: entry {entry!r} is not a GPU index, GPU-<uuid> or MIG-<uuid>; "
                "expected a comma-separated list such as '0,1' or 'GPU-8a3c…,GPU-51b2…', or '' for no GPU"
            )
        if ref in refs:
            raise ValueError(f"CUDA_VISIBLE_DEVICES={value!r} lists {entry!r} twice; list each GPU once")
        refs.append(ref)
    return VisibleDevices(tuple(refs), order_name)
