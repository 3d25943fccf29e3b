"""What the model card says: a DAG run's records turned into the Hub's ``co2_eq_emissions`` metadata.

Pure data, no I/O and no Airflow (the spec: https://huggingface.co/docs/hub/model-cards-co2):
``emissions`` in grams CO2e, ``source``, ``training_type``, ``geographical_location``, ``hardware_used``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from airflow_carbon._version import __version__
from airflow_carbon.core.aggregate import Aggregate
from airflow_carbon.core.live import SOURCES
from airflow_carbon.core.options import OPTION, OptionError, validate
from airflow_carbon.core.record import Record

TRAINING_TYPES: tuple[str, ...] = OPTION["training_type"].suggested
"""The values the Hub's documentation names for ``training_type``."""

_GPU_METHODS = {"counter": "NVML energy counters", "sampled": "NVML power sampled and integrated"}


def grams(value: float) -> float:
    """Grams CO2e as published: 6 significant digits (deterministic, so re-running writes the same value)."""
    return float(f"{value:.6g}")


def validate_training_type(training_type: object) -> str:
    """Return ``training_type``; other text than the Hub's two values is accepted with a warning (the
    option table's rule, :data:`airflow_carbon.core.options.OPTIONS`, as for a task's argument)."""
    if training_type is None:  # required here, optional for a task
        raise OptionError("training_type", training_type)
    return validate("training_type", training_type)


def _methods(aggregate: Aggregate) -> str:
    """E.g. 'GPU: NVML energy counters; CPU and RAM estimated' from the records' component methods."""
    gpu = sorted(aggregate.gpu_methods - {"missing"})
    parts = []
    if gpu:
        parts.append("GPU: " + ", ".join(_GPU_METHODS.get(m, m) for m in gpu))
    if aggregate.gpu_missing:
        parts.append("some GPU energy missing")
    cpu, ram = aggregate.cpu_methods, aggregate.ram_methods
    if cpu == {"estimated"} and ram == {"estimated"}:
        parts.append("CPU and RAM estimated")
    else:
        parts.append("CPU: " + ", ".join("RAPL" if m == "rapl" else m for m in sorted(cpu)))
        parts.append("RAM: " + ", ".join(sorted(ram)))
    return "; ".join(parts)


def _grid(aggregate: Aggregate) -> str:
    """Where the grams' grid intensity came from, where a live source was used for any try: e.g.
    '; grid intensity: live from Electricity Maps (zone FR) for 3 of 4 tries, bundled table otherwise'.
    Nothing for records that used the bundled table alone (the source said so before live sources)."""
    live: dict[str, int] = {}
    for (live_source, zone), tries in aggregate.live.items():
        source = SOURCES.get(live_source or "")
        label = source.short_name if source else str(live_source)
        if source and source.signal == "marginal":
            label += " (marginal)"
        elif live_source == "uk_carbon_intensity":
            label += " (operational)"
        key = label + (f" (zone {zone})" if zone else "")
        live[key] = live.get(key, 0) + tries
    if not live:
        fell_back = aggregate.fell_back
        return f"; grid intensity: bundled table (the live source gave no figure for {fell_back} tries)" if fell_back else ""
    used = sum(live.values())
    text = "; grid intensity: live from " + ", ".join(live)
    if used < aggregate.tries:
        text += f" for {used} of {aggregate.tries} tries, bundled table otherwise"
    if aggregate.live_fell_back:
        text += " (some hours from the bundled table where the source gave none)"
    return text


def co2_eq_emissions(records: Iterable[Record] | Aggregate, training_type: str, *, origin: str) -> dict[str, Any]:
    """The card's ``co2_eq_emissions`` for ``records`` (all tries of all tasks): a list, any iterable (consumed
    once, in constant memory), or an :class:`~airflow_carbon.core.aggregate.Aggregate` the caller filled
    record by record. ``origin`` names where the figures come from (e.g. "DAG train_llm") and goes into
    ``source``, so the operator can recognise its own entry when it runs again."""
    aggregate = records if isinstance(records, Aggregate) else Aggregate.of(records)
    if not aggregate.tries:
        raise ValueError("no records to summarise")
    return {
        "emissions": grams(aggregate.emissions_g),
        "source": f"airflow-carbon {__version__} ({origin}): {_methods(aggregate)}{_grid(aggregate)}",
        "training_type": training_type,
        "geographical_location": aggregate.geographical_location(),
        "hardware_used": aggregate.hardware_used(),
    }


_ADDED_RE = re.compile(r"; added to an earlier figure of ([0-9.eE+-]+) g \((.*)\)$")


def combine(existing: dict[str, Any], ours: dict[str, Any], on_existing: str, origin: str) -> dict[str, Any]:
    """Our metadata given the card's current ``co2_eq_emissions``.

    An entry that airflow-carbon wrote for the same ``origin`` is recomputed (so re-running writes the
    same value, never adds to itself); any other entry is replaced (``on_existing="replace"``), added
    to (``"add"``: grams summed, the earlier source kept in ours), or refused (``"fail"``).
    """
    source = str(existing.get("source", ""))
    if source.startswith("airflow-carbon") and f"({origin})" in source:
        earlier = _ADDED_RE.search(source)  # a previous "add": keep adding the same earlier figure
        if earlier:
            return _added(ours, float(earlier.group(1)), earlier.group(2))
        return ours
    if on_existing == "replace":
        return ours
    if on_existing == "add":
        try:
            earlier_g = float(existing.get("emissions", 0))
        except (TypeError, ValueError):
            raise ValueError(
                f"the card's co2_eq_emissions.emissions is {existing.get('emissions')!r}, not a number of grams; cannot add to it"
            ) from None
        return _added(ours, earlier_g, source or "unknown source")
    raise ValueError(
        f"the card already has co2_eq_emissions from elsewhere ({source or 'no source given'}: "
        f"{existing.get('emissions')!r} g); set on_existing='replace' to overwrite it or 'add' to add this run's emissions to it"
    )


def _added(ours: dict[str, Any], earlier_g: float, earlier_source: str) -> dict[str, Any]:
    return {
        **ours,
        "emissions": grams(ours["emissions"] + earlier_g),
        "source": f"{ours['source']}; added to an earlier figure of {earlier_g:g} g ({earlier_source})",
    }
