"""An OpenTelemetry collector's OTLP/HTTP metrics receiver on loopback for tests: ``POST /v1/metrics``
with a protobuf ``ExportMetricsServiceRequest`` (gzip or deflate bodies too), decoded with the
OpenTelemetry protobufs (``opentelemetry-proto``, which Airflow depends on) into flat data points.

    with OtlpSink() as sink:  # http://127.0.0.1:<ephemeral port>; sink.host, sink.port, sink.endpoint
        ...
        sink.wait_for(lambda p: p.name == "airflow.carbon.energy_j")
        sink.points()  # [OtlpPoint(name, kind, value, attributes, resource, ...), ...]

``status``: what the receiver answers (200 with an ``ExportMetricsServiceResponse``; 500 for a broken
collector: the request is still decoded and kept, in ``failed_requests``).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from carbon_testing.waiting import wait_for


@dataclass(frozen=True)
class OtlpPoint:
    """One number data point of an exported metric: ``kind`` is "sum" or "gauge" (histograms: their sum)."""

    name: str
    kind: str
    value: float
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    unit: str = ""
    monotonic: bool | None = None
    """Sums only: whether the sum is a counter's."""
    temporality: str | None = None
    """Sums only: "cumulative" or "delta"."""
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    scope: str = ""


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.values}
    return value


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def decode(body: bytes) -> list[OtlpPoint]:
    """The data points of a serialized ``ExportMetricsServiceRequest``."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    points: list[OtlpPoint] = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                common = {"name": metric.name, "kind": kind, "resource": resource, "unit": metric.unit, "scope": scope_metrics.scope.name}
                if kind == "sum":
                    common["monotonic"] = data.is_monotonic
                    common["temporality"] = AggregationTemporality.Name(data.aggregation_temporality).removeprefix(
                        "AGGREGATION_TEMPORALITY_").lower()
                for point in data.data_points:
                    if kind in ("sum", "gauge"):
                        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                    else:  # histograms: their sum
                        value = point.sum
                    points.append(OtlpPoint(value=value, attributes=_attributes(point.attributes),
                                            start_time_unix_nano=point.start_time_unix_nano, time_unix_nano=point.time_unix_nano,
                                            **common))
    return points


class OtlpSink:
    """A ThreadingHTTPServer on ``host`` (an ephemeral port) until :meth:`close`."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200) -> None:
        self.status = status
        self.requests: list[list[OtlpPoint]] = []
        """Each accepted request's points, in arrival order."""
        self.failed_requests: list[list[OtlpPoint]] = []
        """Each request answered with an error ``status``."""
        self.paths: list[str] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with sink._lock:
                    sink.paths.append(self.path)
                if self.path != "/v1/metrics":
                    self.send_error(404)
                    return
                points = decode(body)
                with sink._lock:
                    (sink.requests if sink.status == 200 else sink.failed_requests).append(points)
                if sink.status != 200:
                    self.send_error(sink.status)
                    return
                from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self.endpoint = f"http://{self.host}:{self.port}/v1/metrics"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-sink",
                                        daemon=True)
        self._thread.start()

    def points(self) -> list[OtlpPoint]:
        """Every data point of every accepted request, in arrival order."""
        with self._lock:
            return [p for request in self.requests for p in request]

    def wait_for(self, predicate: Callable[[OtlpPoint], bool], timeout: float = 5.0) -> list[OtlpPoint]:
        """The points matching ``predicate`` once there is at least one (AssertionError after ``timeout``)."""
        return wait_for(self.points, predicate, timeout, f"OTLP data points {sorted({p.name for p in self.points()})}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> OtlpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
