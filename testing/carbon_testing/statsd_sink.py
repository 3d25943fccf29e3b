"""A StatsD server on loopback UDP for tests: it keeps every datagram it receives and parses each line,
plain StatsD (``name:value|type[|@rate]``) and DogStatsD's tags (``...|#key:value,key2:value2``).

    with StatsdSink() as sink:  # 127.0.0.1, an ephemeral port: sink.port
        ...
        sink.wait_for(lambda m: m.name.startswith("airflow.carbon.co2_mg."))
        sink.metrics()  # [StatsdMetric(name, value, type, tags, rate), ...]

Standard library only.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from carbon_testing.waiting import wait_for


@dataclass(frozen=True)
class StatsdMetric:
    """One line of a datagram: ``type`` is "c" (counter), "g" (gauge), "ms" (timer), "s" (set)..."""

    name: str
    value: float
    type: str
    tags: dict[str, str] = field(default_factory=dict)
    """DogStatsD's ``#key:value`` tags (a tag without a value maps to "")."""
    rate: float = 1.0
    line: str = ""


def parse_line(line: str) -> StatsdMetric:
    """A StatsD / DogStatsD line as a :class:`StatsdMetric` (ValueError where it is not one)."""
    name, _, rest = line.partition(":")
    if not name or not rest:
        raise ValueError(f"not a StatsD line: {line!r}")
    value, *fields = rest.split("|")
    if not fields:
        raise ValueError(f"not a StatsD line (no type): {line!r}")
    kind, rate, tags = fields[0], 1.0, {}
    for extra in fields[1:]:
        if extra.startswith("@"):
            rate = float(extra[1:])
        elif extra.startswith("#"):
            for tag in extra[1:].split(","):
                key, _, tag_value = tag.partition(":")
                tags[key] = tag_value
    return StatsdMetric(name, float(value), kind, tags, rate, line)


class StatsdSink:
    """A UDP socket bound on ``host`` (an ephemeral port) and a thread reading it until :meth:`close`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()[:2]
        self.datagrams: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="statsd-sink", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65535)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)

    def lines(self) -> list[str]:
        """Every line received so far (a datagram may carry several, newline-separated)."""
        with self._lock:
            datagrams = list(self.datagrams)
        return [line for data in datagrams for line in data.decode("utf-8", "replace").splitlines() if line]

    def metrics(self, prefix: str = "") -> list[StatsdMetric]:
        """The parsed lines whose name starts with ``prefix``."""
        return [m for m in map(parse_line, self.lines()) if m.name.startswith(prefix)]

    def wait_for(self, predicate: Callable[[StatsdMetric], bool], timeout: float = 5.0) -> list[StatsdMetric]:
        """The metrics matching ``predicate`` once there is at least one (AssertionError after ``timeout``)."""
        return wait_for(self.metrics, predicate, timeout, f"StatsD lines {self.lines()}")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> StatsdSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
