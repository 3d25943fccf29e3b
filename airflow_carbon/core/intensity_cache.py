"""A grid-intensity cache shared by the task processes of one host: files in a directory, one per series.

A series is one source's figures for one zone at one API (source, base URL, zone, emission factor). Its
file holds the intervals fetched so far, each with when it was fetched, and the last failure with until
when not to ask again (a 429's ``Retry-After``, else :data:`FAILURE_BACKOFF_S`). Readers read without a
lock (files are replaced atomically); a process that must fetch takes the series' lock file first
(``fcntl.flock``), then looks again, so that 50 tasks starting together make one request. Nobody waits
longer than :data:`LOCK_WAIT_S` for the lock: past it, the waiter says so instead of fetching.

Standard library only; no Airflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_carbon.core.segments import IntensityInterval

FAILURE_BACKOFF_S = 60.0
"""Seconds a failed request is not repeated by any task of the host (a 429's Retry-After where longer)."""
LOCK_WAIT_S = 10.0
"""Seconds a process waits for another one's fetch of the same series (longer than a request's timeouts)."""
KEEP_S = 8 * 24 * 3600.0
"""Intervals that ended longer ago than this (s) are dropped when a series is written."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/airflow-carbon/intensity`` (``~/.cache/...`` where unset): per user and host."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-carbon" / "intensity"


@dataclass(frozen=True)
class CachedInterval:
    """An interval with the Unix time (s) it was fetched at."""

    interval: IntensityInterval
    fetched_s: float


@dataclass(frozen=True)
class SeriesState:
    """What the cache knows of a series: its intervals, by start, and the last failure if it still holds."""

    intervals: tuple[CachedInterval, ...] = ()
    failure: str | None = None
    """``<source>: <reason>`` of the last failed request, while ``failed_until_s`` is ahead."""
    failed_until_s: float = 0.0


class IntensityCache:
    """The cache in ``directory`` (created on first write; :func:`default_cache_dir` when None)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"IntensityCache({str(self.directory)!r})"

    @staticmethod
    def series_name(*key: str | None) -> str:
        """The file name of a series (a hash: a zone or URL may hold any character)."""
        return hashlib.sha256("\x1f".join(k or "" for k in key).encode()).hexdigest()[:24]

    def read(self, name: str, *, now_s: float | None = None) -> SeriesState:
        """The series' state (empty when there is no file or it cannot be read)."""
        try:
            data = json.loads((self.directory / f"{name}.json").read_text("utf-8"))
            intervals = tuple(
                CachedInterval(IntensityInterval(r[0], r[1], r[2], r[3], bool(r[4])), float(r[5])) for r in data["intervals"]
            )
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return SeriesState()
        now = time.time() if now_s is None else now_s
        until = float(data.get("failed_until_s") or 0.0)
        failure = data.get("failure") if until > now else None
        return SeriesState(intervals, failure, until if failure else 0.0)

    def write(self, name: str, intervals: list[IntensityInterval], *, fetched_s: float, now_s: float | None = None) -> SeriesState:
        """Merge freshly fetched ``intervals`` into the series (they replace cached ones that overlap them)
        and clear its failure. Returns the new state."""
        now = time.time() if now_s is None else now_s
        old = self.read(name, now_s=now).intervals
        fresh = [CachedInterval(i, fetched_s) for i in intervals]
        kept = [c for c in old if not any(_overlap(c.interval, f.interval) for f in fresh)]
        merged = sorted((c for c in [*kept, *fresh] if c.interval.end_s > now - KEEP_S), key=lambda c: c.interval.start_s)
        state = SeriesState(tuple(merged))
        self._store(name, state)
        return state

    def write_failure(self, name: str, failure: str, *, until_s: float) -> None:
        """Remember a failed request (``<source>: <reason>``) until ``until_s`` (Unix s); intervals are kept."""
        current = self.read(name)
        self._store(name, SeriesState(current.intervals, failure, until_s))

    @contextlib.contextmanager
    def lock(self, name: str, *, wait_s: float = LOCK_WAIT_S) -> Iterator[bool]:
        """Hold the series' fetch lock: yields True once held, False if another process held it for
        ``wait_s`` seconds (the caller then does not fetch)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.005)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- internals ---------------------------------------------------------------------------------
    def _store(self, name: str, state: SeriesState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "intervals": [[c.interval.start_s, c.interval.end_s, c.interval.g_per_kwh, c.interval.source,
                           c.interval.estimated, c.fetched_s] for c in state.intervals],
            "failure": state.failure,
            "failed_until_s": state.failed_until_s,
        }
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
            os.replace(tmp, self.directory / f"{name}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _overlap(a: IntensityInterval, b: IntensityInterval) -> bool:
    return a.start_s < b.end_s and b.start_s < a.end_s
