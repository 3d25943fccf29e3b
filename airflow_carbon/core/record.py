"""The energy record: one JSON-serialisable dict per measured window, and its validation.

This module imports nothing from the rest of the package (nor from Airflow), so any process can read
and check records. The JSON Schema (draft-07) ships as ``airflow_carbon/core/schemas/record-v1.schema.json``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_RESOURCE = "schemas/record-v1.schema.json"


class RecordError(ValueError):
    """A record that does not follow the schema; the message names the field and the bad value."""


@functools.cache
def record_schema() -> dict[str, Any]:
    """The record's JSON Schema (draft-07) as a dict."""
    from importlib import resources

    return json.loads(resources.files("airflow_carbon.core").joinpath(SCHEMA_RESOURCE).read_text("utf-8"))


@functools.cache
def _fast_check() -> Any:
    """The schema compiled to Python by fastjsonschema (~100x faster than jsonschema's interpreter)."""
    import fastjsonschema

    return fastjsonschema.compile(record_schema())


@functools.cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(record_schema())


def validate_record(record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` unchanged if it follows the schema, else raise RecordError naming the field."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    import fastjsonschema

    try:
        _fast_check()(record)
        return record
    except fastjsonschema.JsonSchemaException:
        pass  # explain it with jsonschema, which names the field best
    errors = sorted(_validator().iter_errors(record), key=lambda e: (len(e.absolute_path), e.json_path))
    if errors:
        first = errors[0]
        field = first.json_path.removeprefix("$.") if first.absolute_path else "(record)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RecordError(f"invalid record field {field}: {first.message}{more}")
    return record


def load_record(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """Parse (when given JSON text) and validate a record; raise RecordError naming the bad field."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise RecordError(f"a record must be JSON: {exc}") from None
    return validate_record(data)  # type: ignore[arg-type]
