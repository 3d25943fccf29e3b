"""This host's processes from /proc: a pid's parent and start time, a process tree, whether a process is still
the one that started then, and signals that never reach a reused pid. Linux; empty answers elsewhere. No Airflow."""

from __future__ import annotations

import contextlib
import os

__all__ = ["alive", "children", "descendants", "signal_all", "start_ticks", "stat"]


def stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid`` from /proc, or None where it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc/<pid>/task/<tid>/children (Linux >= 3.5, CONFIG_PROC_CHILDREN)."""
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:  # the thread or process just exited
            continue
    return found


def descendants(root_pid: int) -> dict[int, int]:
    """Every process below ``root_pid`` (children, grandchildren...): pid -> start time (clock ticks, so that a
    reused pid is never signalled). Walks the tree's own /proc entries where the kernel lists children, else
    every process's parent; Linux /proc, empty elsewhere."""
    found: dict[int, int] = {}
    if os.path.exists(f"/proc/{root_pid}/task/{root_pid}/children"):
        stack = [root_pid]
        while stack:
            pid = stack.pop()
            try:
                below = children(pid)
            except OSError:  # exited meanwhile
                continue
            for child in below:
                if child not in found and (ticks := start_ticks(child)) is not None:
                    found[child] = ticks
                    stack.append(child)
        return found
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        st = stat(pid)
        if st is not None:
            parents.setdefault(st[0], []).append(pid)
            starts[pid] = st[1]
    stack = list(parents.get(root_pid, []))
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found[pid] = starts[pid]
        stack.extend(parents.get(pid, []))
    return found


def alive(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` (clock ticks) and not a zombie."""
    st = stat(pid)
    if st is None or st[1] != start:
        return False
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return b"State:\tZ" not in f.read()
    except OSError:
        return False


def signal_all(processes: dict[int, int], signum: int) -> None:
    """Send ``signum`` to each of ``processes`` (pid -> start ticks) still alive; a pid reused since is left alone."""
    for pid, start in processes.items():
        if alive(pid, start):
            with contextlib.suppress(OSError):
                os.kill(pid, signum)


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), or None where it is gone."""
    st = stat(pid)
    return None if st is None else st[1]
