"""Live and forecast grid-intensity sources: Airflow-free clients of public APIs (issue 13, in progress).

Each client returns :class:`~airflow_carbon.core.segments.IntensityInterval` series and raises
:class:`~airflow_carbon.core.sources.http.SourceError` (whose ``reason`` is what a record's ``fallback``
says) for every failure: no network, timeout, refused credentials, unknown zone, rate limit, server error,
malformed response.
"""
