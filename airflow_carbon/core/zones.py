"""The zone or region each live grid-intensity source knows a location by.

Pure standard library. The bundled table ``airflow_carbon/core/data/intensity_zones.json`` maps the
canonical location keys of the grid-intensity table (``core/intensity.py``: ``"FR"``, ``"US-CA"``,
``"SE3"``, ``"gcp:europe-west2"``) to each source's vocabulary: an Electricity Maps ``zone``
(``"FR"``, ``"US-CAL-CISO"``, ``"SE-SE3"``), a WattTime ``region`` (``"CAISO_NORTH"``, ``"PJM_DC"``)
or a GB Carbon Intensity region (``None`` for national Great Britain). It is read lazily on the first
lookup and cached for the life of the process. Where a mapping is an approximation (a US state to its
main balancing authority, a cloud region to its city's zone) the table's ``basis`` and ``notes`` say so.
"""

from __future__ import annotations

from typing import Any

from airflow_carbon.core.intensity import _find_key, bundled_data, location_entry
from airflow_carbon.core.live import SOURCES

__all__ = ["LIVE_SOURCES", "ZoneError", "zone_for", "zones"]

LIVE_SOURCES: tuple[str, ...] = tuple(SOURCES)
"""The live grid-intensity sources a zone can be looked up for."""

_DATA_PATH = ("data", "intensity_zones.json")


class ZoneError(ValueError):
    """No zone of ``source`` is known for ``location``; the message says to set ``intensity_zone``."""

    def __init__(self, source: str, location: str | None, problem: str) -> None:
        self.source = source
        self.location = location
        super().__init__(f"{problem}; set intensity_zone to the {source} zone to use.")


def _table() -> dict[str, Any]:
    """The bundled zone table (read on first use)."""
    return bundled_data(*_DATA_PATH)


def _zones(source: str) -> dict[str, str | None]:
    if source not in LIVE_SOURCES:
        raise ValueError(f"unknown live source {source!r}; expected one of {', '.join(LIVE_SOURCES)}")
    return _table()["zones"][source]["zones"]


def zones(source: str) -> dict[str, str | None]:
    """Canonical location key -> zone of ``source`` (a copy); ``None`` is the GB national figure."""
    return dict(_zones(source))


def zone_for(source: str, location: str | None) -> str | None:
    """The zone of ``source`` for a location in any form ``core.intensity`` accepts ('FR', 'France',
    'US-CA', 'California, USA', 'gcp:europe-west2').

    ``uk_carbon_intensity`` gives ``None`` (national Great Britain) for GB and the cloud regions there.
    Raises ``ValueError`` for an unknown ``source`` and :class:`ZoneError` for a location that is None,
    unknown, or without a zone of that source."""
    mapping = _zones(source)
    if location is None:
        raise ZoneError(source, None, f"no location given to find the {source} zone of (location=None)")
    if not isinstance(location, str):
        raise TypeError(f"location must be a string or None, got {location!r} ({type(location).__name__})")
    key = _find_key(location) if location.strip() else None
    if key is None:
        raise ZoneError(
            source, location, f"no {source} zone for {location!r}: not a known location (e.g. 'FR', 'US-CA', 'gcp:us-central1')"
        )
    if key in mapping:
        return mapping[key]
    where = f"{location!r} ({(location_entry(key) or {}).get('name', key)})"
    if source == "uk_carbon_intensity":
        raise ZoneError(source, location, f"uk_carbon_intensity covers Great Britain only, not {where}")
    raise ZoneError(source, location, f"no {source} zone is known for {where}")
