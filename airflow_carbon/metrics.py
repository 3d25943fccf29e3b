"""Airflow layer: each try's energy and CO2 as metrics beside Airflow's own, through Airflow's ``[metrics]``
configuration (StatsD, Datadog's DogStatsD, OpenTelemetry), so dashboards need no new plumbing.

- ``carbon.energy_j``: counter, added once per finished try (any outcome): its energy in J, before PUE
  (the record's ``energy_kwh``), rounded to an integer;
- ``carbon.co2_mg``: counter, likewise: its emissions in mg CO2e (the record's ``emissions_g``, PUE included);
- ``carbon.power_w``: gauge, at each checkpoint of a running try (every ``checkpoint_interval_s``): the
  try's mean power in W, before PUE, since its previous checkpoint (since its start, for the first one).

The backend is the one Airflow's own ``Stats`` takes: ``statsd_datadog_enabled``, else ``statsd_on``, else
``otel_on``; names take Airflow's prefix (``statsd_prefix``, ``otel_prefix``: "airflow" by default). Where
the backend carries tags (DogStatsD with ``statsd_datadog_metrics_tags``, OpenTelemetry's attributes, StatsD
with ``statsd_influxdb_enabled``) each metric is tagged ``dag_id``, ``task_id``, ``queue`` and ``hostname``;
in plain StatsD, whose lines have none, the name ends in ``.<dag_id>.<task_id>`` instead (a ``.`` in an id,
a task group's task, becomes ``__``, as in Airflow's legacy names). ``metrics_allow_list`` and
``metrics_block_list`` apply as to Airflow's metrics.

They go through Airflow's own ``Stats`` where it is live in the task process (the Task SDK's task runner
initialises it from ``[metrics]``); where it is a no-op there (StatsD without the ``statsd`` package,
DogStatsD without ``datadog``, a process Airflow did not initialise), through a client built here from the
same settings: a UDP StatsD / DogStatsD sender, or an OpenTelemetry MeterProvider exporting over OTLP to
Airflow's endpoint (the ``OTEL_EXPORTER_OTLP_*`` variables, else ``otel_host``, ``otel_port`` and
``otel_ssl_active``). OpenTelemetry's metrics are flushed as a try ends, so they leave before its process.

The configuration is read once per process, at the first metric; metrics off, each call costs one
comparison. Nothing here raises: a failing backend is at most one warning in the task log per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from typing import Any

from airflow_carbon.core.units import kwh_to_j

log = logging.getLogger(__name__)

ENERGY_J = "carbon.energy_j"
CO2_MG = "carbon.co2_mg"
POWER_W = "carbon.power_w"
TAGS = ("dag_id", "task_id", "queue", "hostname")
"""The tags of every metric, where the backend carries tags."""

OTEL_FLUSH_TIMEOUT_S = 5.0
"""Our own OTLP exporter's timeout, unless ``OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT``
set one: the longest the end of a try waits for a collector that is down (retries included, about 3 s).
Through Airflow's own Stats, its exporter's timeout applies (10 s by default)."""

_INVALID = re.compile(r"[^a-zA-Z0-9_.\-]")
_UNSET: Any = object()
_backend: Any = _UNSET  # _Backend, None (metrics off), or _UNSET (not read yet in this process)
_resolve_lock = threading.Lock()
_marks: dict[tuple[Any, ...], tuple[float, float]] = {}
"""Each running try's (energy J, duration s) at its previous checkpoint."""
_warned: set[str] = set()


def _active() -> Any:
    """This process's backend, or None where metrics are off (or it could not be built: warned). Never raises."""
    if _backend is None:
        return None
    try:
        return _get()
    except Exception as exc:
        _warn("emit", f"airflow-carbon: carbon metrics are off in this process: {exc!r}")
        return None


def emit_try(record: dict[str, Any]) -> None:
    """Add a finished try's energy (J) and emissions (mg) to the counters. Never raises."""
    backend = _active()
    if backend is None:
        return
    try:
        _marks.pop(_try_key(record), None)
        task = record.get("task") or {}
        backend.count(ENERGY_J, round(kwh_to_j(record["energy_kwh"])), task, _tags(record))
        backend.count(CO2_MG, round(record["emissions_g"] * 1000), task, _tags(record))
        backend.flush()
    except Exception as exc:
        _warn("emit", f"airflow-carbon: the try's carbon metrics could not be sent: {exc!r}")


def emit_power(record: dict[str, Any]) -> None:
    """At a running try's checkpoint (its record so far): the gauge of its mean power since the previous
    checkpoint. Runs on the meter's sampling thread. Never raises."""
    backend = _active()
    if backend is None:
        return
    try:
        key = _try_key(record)
        energy_j, duration_s = kwh_to_j(record["energy_kwh"]), float(record["duration_s"])
        last_j, last_s = _marks.get(key, (0.0, 0.0))
        _marks[key] = (energy_j, duration_s)
        if duration_s > last_s:
            watts = max(0.0, (energy_j - last_j) / (duration_s - last_s))
            backend.gauge(POWER_W, round(watts, 3), record.get("task") or {}, _tags(record))
    except Exception as exc:
        _warn("emit", f"airflow-carbon: the try's power gauge could not be sent: {exc!r}")


def reset() -> None:
    """Forget the backend (its configuration is read again at the next metric) and close our own client.
    For tests, and for a process whose ``[metrics]`` changed."""
    global _backend
    with _resolve_lock:
        backend, _backend = _backend, _UNSET
        _marks.clear()
        _warned.clear()
    if backend not in (None, _UNSET):
        with contextlib.suppress(Exception):  # closing is best effort
            backend.close()


def backend_name() -> str | None:
    """Which client the metrics go through in this process ("airflow-stats:otel", "statsd", "dogstatsd",
    "otel"), None where metrics are off (reads the configuration where not read yet)."""
    backend = _get()
    return None if backend is None else backend.name


def _forget_after_fork() -> None:
    global _backend, _resolve_lock
    _backend = _UNSET  # a forked child builds its own (our client's socket / exporter thread are the parent's)
    _resolve_lock = threading.Lock()  # another thread of the parent may have held it
    _marks.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


# -- the backend, read once per process ----------------------------------------------------------------
def _get() -> Any:
    global _backend
    if _backend is _UNSET:
        with _resolve_lock:
            if _backend is _UNSET:
                try:
                    _backend = _resolve()
                    if _backend is not None:
                        log.info("airflow-carbon: carbon metrics go through %s", _backend.where)
                except Exception as exc:
                    _backend = None
                    _warn("config", f"airflow-carbon: carbon metrics are off: the [metrics] settings could not be used: {exc!r}")
    return _backend


def _resolve() -> Any:
    from airflow.sdk import conf

    if conf.getboolean("metrics", "statsd_datadog_enabled", fallback=False):
        mode = "dogstatsd"
    elif conf.getboolean("metrics", "statsd_on", fallback=False):
        mode = "statsd"
    elif conf.getboolean("metrics", "otel_on", fallback=False):
        mode = "otel"
    else:
        return None
    allowed = _list_filter(conf.get("metrics", "metrics_allow_list", fallback=None),
                           conf.get("metrics", "metrics_block_list", fallback=None))
    influx = conf.getboolean("metrics", "statsd_influxdb_enabled", fallback=False)
    tagged = {"dogstatsd": conf.getboolean("metrics", "statsd_datadog_metrics_tags", fallback=True),
              "statsd": influx, "otel": True}[mode]
    stats = _airflow_stats(mode)
    if stats is not None:
        return _AirflowStats(stats, mode, tagged, allowed)
    handler = _name_handler(conf)
    if mode == "otel":
        return _Otel(conf, allowed, handler)
    host = conf.get("metrics", "statsd_host", fallback="localhost") or "localhost"
    port = conf.getint("metrics", "statsd_port", fallback=8125)
    prefix = conf.get("metrics", "statsd_prefix", fallback="airflow") or ""
    ipv6 = conf.getboolean("metrics", "statsd_ipv6", fallback=False)
    disabled = {t.strip().lower() for t in (conf.get("metrics", "statsd_disabled_tags", fallback=None) or "").split(",") if t.strip()}
    constant = []
    if mode == "dogstatsd":
        constant = [t.strip() for t in (conf.get("metrics", "statsd_datadog_tags", fallback=None) or "").split(",") if t.strip()]
    return _Statsd(mode, host, port, prefix, ipv6, tagged=tagged, influx=influx, constant_tags=constant,
                   disabled_tags=disabled, allowed=allowed, handler=handler)


def _airflow_stats(mode: str) -> Any:
    """Airflow's stats module where its backend in this process is a live one of ``mode``, else None (a
    NoStatsLogger: not initialised here, or its client's package missing)."""
    try:
        from airflow.sdk._shared.observability.metrics import stats
    except ImportError:  # pragma: no cover - another Airflow layout: our own client
        return None
    expected = {"dogstatsd": "SafeDogStatsdLogger", "statsd": "SafeStatsdLogger", "otel": "SafeOtelLogger"}[mode]
    try:
        return stats if type(stats._get_backend()).__name__ == expected else None
    except Exception:
        return None


def _name_handler(conf: Any) -> Callable[[str], str] | None:
    try:
        return conf.getimport("metrics", "stat_name_handler", fallback=None) or None
    except Exception as exc:
        _warn("handler", f"airflow-carbon: [metrics] stat_name_handler could not be imported, not applied: {exc!r}")
        return None


def _list_filter(allow: str | None, block: str | None) -> Callable[[str], bool]:
    """Airflow's metrics_allow_list / metrics_block_list (regular expressions found in the lower-cased
    name; the allow list wins where both are set)."""
    patterns = [p.strip().lower() for p in (allow or block or "").split(",") if p.strip()]
    if not patterns:
        return lambda name: True
    found = lambda name: any(re.search(p, name.lower()) for p in patterns)  # noqa: E731
    return found if allow else (lambda name: not found(name))


def _try_key(record: dict[str, Any]) -> tuple[Any, ...]:
    task = record.get("task") or {}
    return tuple(task.get(k) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number"))


def _tags(record: dict[str, Any]) -> dict[str, str]:
    task = record.get("task") or {}
    values = {**{k: task.get(k) for k in TAGS}, "hostname": task.get("hostname") or record.get("host")}
    return {k: str(v) for k, v in values.items() if v not in (None, "")}


def _suffixed(name: str, task: dict[str, Any]) -> str:
    """The plain StatsD name: ``name.<dag_id>.<task_id>``, a ``.`` inside either as ``__``."""
    ids = [str(task.get(k) or "unknown").replace(".", "__") for k in ("dag_id", "task_id")]
    return _INVALID.sub("_", ".".join([name, *ids]))


def _warn(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        log.warning("%s", message)


# -- backends -----------------------------------------------------------------------------------------
class _AirflowStats:
    """Airflow's own ``Stats``, live in this process: its client, prefix, tags, handlers and lists."""

    def __init__(self, stats: Any, mode: str, tagged: bool, allowed: Callable[[str], bool]) -> None:
        self.stats, self.mode, self.tagged, self.allowed = stats, mode, tagged, allowed
        self.name = f"airflow-stats:{mode}"
        self.where = f"Airflow's own Stats ({mode})"

    def _stat(self, name: str, task: dict[str, Any]) -> str:
        return name if self.tagged else _suffixed(name, task)

    def count(self, name: str, value: int, task: dict[str, Any], tags: dict[str, str]) -> None:
        if self.allowed(stat := self._stat(name, task)):  # Airflow's validator too: ours is the same lists
            self.stats.incr(stat, value, tags=tags)

    def gauge(self, name: str, value: float, task: dict[str, Any], tags: dict[str, str]) -> None:
        if self.allowed(stat := self._stat(name, task)):
            self.stats.gauge(stat, value, tags=tags)

    def flush(self) -> None:
        if self.mode != "otel":
            return
        from opentelemetry import metrics

        provider = metrics.get_meter_provider()
        if hasattr(provider, "force_flush") and not provider.force_flush(timeout_millis=OTEL_FLUSH_TIMEOUT_S * 1000):
            _warn("flush", "airflow-carbon: OpenTelemetry's metrics were not flushed in time at the end of the try")

    def close(self) -> None:
        pass


class _Statsd:
    """Our StatsD / DogStatsD client: one UDP datagram a metric, fire and forget (standard library)."""

    def __init__(self, mode: str, host: str, port: int, prefix: str, ipv6: bool, *, tagged: bool, influx: bool,
                 constant_tags: list[str], disabled_tags: set[str], allowed: Callable[[str], bool],
                 handler: Callable[[str], str] | None) -> None:
        self.name = mode
        self.prefix, self.tagged, self.influx, self.allowed, self.handler = prefix, tagged, influx, allowed, handler
        self.datadog = mode == "dogstatsd"
        self.constant_tags, self.disabled_tags = constant_tags, disabled_tags
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        family, _, _, _, self.address = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0]
        self.target = f"{host}:{port}"
        self.where = f"a {mode} client of airflow-carbon's to {self.target} (Airflow's Stats is a no-op in this process)"
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def _line(self, name: str, value: str, kind: str, task: dict[str, Any], tags: dict[str, str]) -> str | None:
        stat = name if self.tagged else _suffixed(name, task)
        if not self.allowed(stat):
            return None
        tags = {k: v for k, v in tags.items() if k.lower() not in self.disabled_tags}
        if self.influx and self.tagged:
            stat += "".join(f",{k}={v}" for k, v in tags.items() if not set(",= ") & set(k + v))
        if self.handler is not None:
            stat = self.handler(stat)
        line = f"{self.prefix}.{stat}" if self.prefix else stat
        line += f":{value}|{kind}"
        if self.datadog:
            tag_list = [f"{k}:{v}" for k, v in tags.items()] if self.tagged else []
            if tag_list or self.constant_tags:
                line += "|#" + ",".join([*tag_list, *self.constant_tags])
        return line

    def _send(self, line: str | None) -> None:
        if line is None:
            return
        try:
            self.sock.sendto(line.encode(), self.address)
        except OSError as exc:  # nobody listening (an ICMP error), a full buffer, no route
            _warn("send", f"airflow-carbon: carbon metrics could not be sent to StatsD at {self.target}: {exc!r}")

    def count(self, name: str, value: int, task: dict[str, Any], tags: dict[str, str]) -> None:
        self._send(self._line(name, str(int(value)), "c", task, tags))

    def gauge(self, name: str, value: float, task: dict[str, Any], tags: dict[str, str]) -> None:
        self._send(self._line(name, f"{max(0.0, value):g}", "g", task, tags))  # a leading "-" would be a delta

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


_OTEL_LOGGERS = ("opentelemetry.exporter.otlp.common.http", "opentelemetry.exporter.otlp.proto.http.metric_exporter",
                 "opentelemetry.exporter.otlp.proto.grpc.exporter", "opentelemetry.exporter.otlp.proto.grpc.metric_exporter")
_quiet = threading.local()


class _QuietWhileOurs(logging.Filter):
    """Drops the OTLP exporter's own log lines (a retry, a failed export: one each) while our exporter
    runs in this thread: its failure is our one warning instead. Airflow's exporter logs as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_QUIET = _QuietWhileOurs()


class _Otel:
    """Our OpenTelemetry client: a MeterProvider of its own (the global one is Airflow's), Airflow's
    exporter settings, its resource (``service.name``) and interval; flushed at each try's end."""

    name = "otel"

    def __init__(self, conf: Any, allowed: Callable[[str], bool], handler: Callable[[str], str] | None) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        self.allowed, self.handler = allowed, handler
        self.prefix = conf.get("metrics", "otel_prefix", fallback=None) or "airflow"
        exporter, self.target = _otlp_exporter(conf)
        self.where = f"an OpenTelemetry client of airflow-carbon's to {self.target} (Airflow's Stats is a no-op in this process)"
        target, otel, self.closing = self.target, self, False

        class Reporting(MetricExporter):  # the real exporter, quiet, its failure one warning of ours
            def __init__(self) -> None:
                super().__init__(preferred_temporality=exporter._preferred_temporality,
                                 preferred_aggregation=exporter._preferred_aggregation)

            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
                if otel.closing:  # reset(): every finished try was flushed already
                    return MetricExportResult.SUCCESS
                _quiet.on = True
                try:
                    result = exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                except Exception as exc:
                    result, error = MetricExportResult.FAILURE, repr(exc)
                else:
                    error = "the collector refused it or did not answer in time"
                finally:
                    _quiet.on = False
                if result != MetricExportResult.SUCCESS:
                    _warn("export", f"airflow-carbon: carbon metrics could not be exported to OpenTelemetry at {target}: {error}")
                return result

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return exporter.force_flush(timeout_millis)

            def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
                exporter.shutdown(timeout_millis=timeout_millis, **kwargs)

        for name in _OTEL_LOGGERS:
            if _QUIET not in logging.getLogger(name).filters:
                logging.getLogger(name).addFilter(_QUIET)
        interval = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or (
            conf.getfloat("metrics", "otel_interval_milliseconds") if conf.has_option("metrics", "otel_interval_milliseconds") else None)
        reader = PeriodicExportingMetricReader(Reporting(), export_interval_millis=float(interval) if interval else None)
        service = os.environ.get("OTEL_SERVICE_NAME") or conf.get("metrics", "otel_service", fallback=None) or "airflow"
        self.provider = MeterProvider(resource=Resource.create({SERVICE_NAME: service}), metric_readers=[reader],
                                      shutdown_on_exit=False)
        self.meter = self.provider.get_meter("airflow_carbon")
        self.instruments: dict[str, Any] = {}

    def _instrument(self, name: str, create: Callable[..., Any]) -> Any:
        full = f"{self.prefix}.{self.handler(name) if self.handler else name}"
        if full not in self.instruments:
            self.instruments[full] = create(full)
        return self.instruments[full]

    def count(self, name: str, value: int, task: dict[str, Any], tags: dict[str, str]) -> None:
        if self.allowed(name):
            self._instrument(name, self.meter.create_counter).add(int(value), attributes=tags)

    def gauge(self, name: str, value: float, task: dict[str, Any], tags: dict[str, str]) -> None:
        if self.allowed(name):
            self._instrument(name, self.meter.create_gauge).set(value, attributes=tags)

    def flush(self) -> None:
        self.provider.force_flush(timeout_millis=OTEL_FLUSH_TIMEOUT_S * 1000)

    def close(self) -> None:
        self.closing = True
        self.provider.shutdown(timeout_millis=OTEL_FLUSH_TIMEOUT_S * 1000)


def _otlp_exporter(conf: Any) -> tuple[Any, str]:
    """The OTLP exporter Airflow's own OpenTelemetry metrics use, and where it sends: the standard
    ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT`` (and ``..._PROTOCOL``: grpc or http/protobuf) where set, else
    ``http[s]://<otel_host>:<otel_port>/v1/metrics`` from ``[metrics]``."""
    env = os.environ.get
    timeout = None if env("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") or env("OTEL_EXPORTER_OTLP_TIMEOUT") else OTEL_FLUSH_TIMEOUT_S
    endpoint = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        if (env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env("OTEL_EXPORTER_OTLP_PROTOCOL")) == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
        return OTLPMetricExporter(timeout=timeout), endpoint
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    host = conf.get("metrics", "otel_host", fallback=None)
    port = conf.getint("metrics", "otel_port") if conf.has_option("metrics", "otel_port") else None
    if not host or port is None:
        raise ValueError("otel_on is set but no endpoint is: set OTEL_EXPORTER_OTLP_ENDPOINT, or [metrics] otel_host and otel_port")
    scheme = "https" if conf.getboolean("metrics", "otel_ssl_active", fallback=False) else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host and not host.startswith('[') else host}:{port}/v1/metrics"
    return HttpExporter(endpoint=url, timeout=timeout), url
