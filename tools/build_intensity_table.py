#!/usr/bin/env python3
"""Build ``airflow_carbon/core/data/grid_intensity.json`` from the open data in ``shared/data``.

Usage::

    python tools/build_intensity_table.py [--data-dir ../shared/data] \
        [--out airflow_carbon/core/data/grid_intensity.json]

Build-time only: needs ``pycountry`` for ISO 3166 codes and names; the runtime
module (``airflow_carbon.core.intensity``) does not. The output is deterministic
(sorted keys, values rounded to 3 decimals, no timestamps) so that the
committed file can be checked by regenerating it.

Inputs: ``codecarbon-3.3.2/`` (the CodeCarbon 3.3.2 copies: countries, US states,
Canadian mixes, per-source factors, Nordic zones, Chinese provinces),
``gcp-region-carbon/2024.csv``, ``ccf/*.csv`` and, from the older ``codecarbon/``
folder, only ``cloud-impact.csv`` (which 3.3.2 does not ship). The older
``codecarbon/2016-usa_emissions.json`` (eGRID2016), ``nordic_emissions.json``
(18.0 placeholders) and ``carbon_intensity_per_source.json`` (no biomass) are
superseded and no longer read; its ``global_energy_mix.json`` and
``2023-canada_energy_mix.json`` are byte-identical to the 3.3.2 copies.

Units handled here:
  * OWID / CodeCarbon country intensities, Nordic zones, Google region-carbon-info: gCO2e/kWh
  * EPA eGRID2023 (CodeCarbon ``2023-usa_emissions.json``, ``STC2ERTA``): lb CO2e/MWh -> x 0.453592 = g/kWh
  * China MEE/NBS 2023 provincial factors: gCO2/kWh (CO2 only), stored as is
  * Cloud Carbon Footprint: metric t CO2e/kWh                           -> x 1e6 = g/kWh
  * Canada Energy Regulator 2023: generation mix in % -> weighted lifecycle factors (g/kWh)

Every entry (and the world average) carries ``emission_factor``: ``"lifecycle"``
(upstream and construction emissions included, e.g. Ember/OWID, IPCC AR5
medians) or ``"direct"`` (combustion at the power plant only, e.g. eGRID output
rates); the basis of each source and why is in ``SOURCES`` and
docs/grid-intensity.md.

Overlaps: when one canonical key has candidates from several sources, the one
with the newest year wins (ties broken by a fixed source priority) and the
others are left out, never averaged.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from airflow_carbon.core.intensity import normalise  # noqa: E402  (stdlib-only module)

CC = "codecarbon-3.3.2"  # refreshed CodeCarbon copies (supersede codecarbon/ where both exist)
CC_OLD = "codecarbon"  # only cloud-impact.csv is still read from here

LIFECYCLE = "lifecycle"  # upstream (fuel supply, construction) + combustion, gCO2e/kWh
DIRECT = "direct"  # combustion at the power plant only (operational), gCO2e (or gCO2) per kWh

LB_PER_MWH_TO_G_PER_KWH = 0.453592
T_PER_KWH_TO_G_PER_KWH = 1e6
OCEAN_G_PER_KWH = 17.0  # IPCC AR5 WG3 Annex III lifecycle median, ocean (tidal)
# IPCC AR5 WG3 Annex III Table A.III.2 lifecycle median, gas combined cycle (min 410, max 650).
# Replaces CodeCarbon's natural_gas 743 for the Canadian mixes; see canada_provinces().
GAS_LIFECYCLE_G_PER_KWH = 490.0

SOURCES = [
    {
        "id": "owid",
        "name": "Our World in Data energy dataset (Ember, Energy Institute), as packaged by CodeCarbon",
        "url": "https://github.com/owid/energy-data",
        "license": "CC-BY-4.0",
        "note": "Figures CC BY 4.0 (Our World in Data, Ember, Energy Institute Statistical Review); "
        "CodeCarbon 3.3.2 file global_energy_mix.json is MIT (identical to the older copy).",
        "emission_factor": LIFECYCLE,
        "basis": "OWID's carbon_intensity_elec is Ember's, which counts lifecycle emissions (gCO2e/kWh, "
        "IPCC AR5 lifecycle factors) rather than combustion only.",
        "used_for": "countries",
    },
    {
        "id": "egrid2023",
        "name": "US EPA eGRID2023 state CO2e total output emission rates (STC2ERTA), via CodeCarbon 3.3.2",
        "url": "https://www.epa.gov/egrid",
        "license": "US-Government-Public-Domain",
        "note": "US federal government work; CodeCarbon 3.3.2 file 2023-usa_emissions.json is MIT. "
        "Supersedes eGRID2016 (codecarbon/2016-usa_emissions.json), no longer read.",
        "emission_factor": DIRECT,
        "basis": "eGRID output emission rates are the plants' emissions (CO2, CH4, N2O as CO2e) divided "
        "by their net generation: combustion only, no upstream emissions.",
        "used_for": "US states and DC",
    },
    {
        "id": "cer2023",
        "name": "Canada Energy Regulator, provincial electricity generation mix 2023, via CodeCarbon",
        "url": "https://www.cer-rec.gc.ca/en/data-analysis/energy-markets/provincial-territorial-energy-profiles/",
        "license": "MIT",
        "note": "Mix from CodeCarbon 3.3.2 2023-canada_energy_mix.json (MIT); converted to an intensity with "
        "CodeCarbon 3.3.2 carbon_intensity_per_source.json factors (MIT) except natural gas, taken as the "
        "IPCC AR5 WG3 Annex III lifecycle median for combined-cycle gas (490 gCO2e/kWh) instead of "
        "CodeCarbon's 743, and tidal 17 gCO2e/kWh (IPCC AR5 ocean median).",
        "emission_factor": LIFECYCLE,
        "basis": "Share-weighted lifecycle factors per source (hydro, wind, nuclear, solar, biomass, gas: "
        "lifecycle figures); CodeCarbon's coal and petroleum factors are combustion estimates, so the "
        "fossil part is closer to direct.",
        "used_for": "Canadian provinces and territories",
    },
    {
        "id": "nordic2025",
        "name": "ENTSO-E Actual Generation per Production Type 2025 per bidding zone, via CodeCarbon 3.3.2 "
        "nordic_emissions.json",
        "url": "https://github.com/mlco2/codecarbon",
        "license": "MIT",
        "note": "Production-based mix x CodeCarbon carbon_intensity_per_source.json factors, as computed "
        "upstream; production types without a factor count 0 (see each zone's coverage). Supersedes the "
        "older nordic_emissions.json, whose 18.0 for every SE/NO zone was a placeholder.",
        "emission_factor": LIFECYCLE,
        "basis": "Mix x per-source lifecycle factors (hydro and wind 26, nuclear 29), the same method as "
        "the Canadian provinces; Finland's 72 is the file's earlier value, of the same magnitude as "
        "OWID's lifecycle figure.",
        "used_for": "Swedish and Norwegian bidding zones, Finland",
    },
    {
        "id": "mee2023",
        "name": "China Ministry of Ecology and Environment and National Bureau of Statistics, 2023 provincial "
        "average electricity CO2 emission factors (Announcement 2025 No. 47, Table 3), via CodeCarbon 3.3.2",
        "url": "https://www.mee.gov.cn/xxgk2018/xxgk/xxgk01/202512/t20251231_1139517.html",
        "license": "MIT",
        "note": "CodeCarbon 3.3.2 file 2023-china_provincial_emissions.json (MIT). Tibet (Xizang), Hong "
        "Kong, Macao and Taiwan are not in the official table.",
        "emission_factor": DIRECT,
        "basis": "The file states the convention: CO2 only (not CO2e), no lifecycle emissions, average "
        "over all generation in the province with inter-provincial transfers.",
        "used_for": "Chinese provinces, municipalities and autonomous regions",
    },
    {
        "id": "google2024",
        "name": "Google Cloud region-carbon-info 2024",
        "url": "https://github.com/GoogleCloudPlatform/region-carbon-info",
        "license": "Apache-2.0",
        "note": "Grid carbon intensity (location-based) per GCP region; Google CFE% not used.",
        "emission_factor": DIRECT,
        "basis": "Google defines it as the 'average operational gross emissions per unit of energy from "
        "the grid'; the values (Stockholm 2.73, Montreal 5.48 g/kWh) are below any lifecycle factor.",
        "used_for": "GCP regions",
    },
    {
        "id": "ccf",
        "name": "Cloud Carbon Footprint grid emissions factors (May 2023 coefficients)",
        "url": "https://github.com/cloud-carbon-footprint/cloud-carbon-footprint",
        "license": "Apache-2.0",
        "note": "US regions: EPA eGRID2020 NERC-region factors; EU: EEA; others carbonfootprint.com 2021.",
        "emission_factor": DIRECT,
        "basis": "eGRID output rates, EEA's CO2 intensity of generation, carbonfootprint.com's generation "
        "factors and Singapore's EMA grid emission factor all count combustion at the plant only.",
        "used_for": "AWS and Azure regions (GCP rows superseded by Google 2024)",
    },
    {
        "id": "cc-cloud",
        "name": "Google region carbon data, via CodeCarbon cloud-impact.csv",
        "url": "https://github.com/mlco2/codecarbon",
        "license": "MIT",
        "note": "Older Google figures (codecarbon/cloud-impact.csv); every row is superseded by Google 2024.",
        "emission_factor": DIRECT,
        "basis": "Google's operational grid intensity (Montreal 2 g/kWh, below any lifecycle factor).",
        "used_for": "nothing (all GCP rows superseded)",
    },
    {
        "id": "iea2019",
        "name": "IEA Global Energy & CO2 Status Report 2019 (world average), as quoted by CodeCarbon",
        "url": "https://www.iea.org/reports/global-energy-co2-status-report-2019/emissions",
        "license": "MIT",
        "note": "Single figure from CodeCarbon 3.3.2 carbon_intensity_per_source.json (MIT).",
        "emission_factor": DIRECT,
        "basis": "IEA's CO2 intensity of power generation: CO2 from fuel combustion per kWh generated.",
        "used_for": "world-average fallback",
    },
]

# Tie-break when two candidates for one key have the same year (lower wins).
SOURCE_PRIORITY = {
    "google2024": 0, "nordic2025": 1, "owid": 2, "cer2023": 3, "egrid2023": 4, "mee2023": 5, "ccf": 6, "cc-cloud": 7,
}

# Extra, commonly used country names (alias -> alpha-2), beyond pycountry/OWID names.
COUNTRY_EXTRA_ALIASES = {
    "US": ["USA", "U.S.", "U.S.A.", "United States of America", "America"],
    "GB": ["UK", "U.K.", "Great Britain", "Britain"],
    "KR": ["Korea", "Republic of Korea"],
    "RU": ["Russia"],
    "CZ": ["Czech Republic"],
    "NL": ["Holland", "The Netherlands"],
    "TR": ["Turkey", "Turkiye"],
    "CI": ["Ivory Coast"],
    "CD": ["DR Congo", "DRC"],
    "CG": ["Republic of the Congo"],
    "AE": ["UAE"],
    "VN": ["Vietnam"],
    "IR": ["Iran"],
    "SY": ["Syria"],
    "LA": ["Laos"],
    "MK": ["Macedonia"],
    "SZ": ["Swaziland"],
    "CV": ["Cape Verde"],
    "TL": ["East Timor"],
    "BN": ["Brunei"],
    "BO": ["Bolivia"],
    "VE": ["Venezuela"],
    "TZ": ["Tanzania"],
    "MD": ["Moldova"],
    "PS": ["Palestine"],
    "TW": ["Taiwan"],
    "HK": ["Hong Kong SAR"],
    "MO": ["Macao", "Macau"],
}

# Nordic zone display names (SE3 contains Stockholm, SE4 Malmo; the upstream
# descriptions for SE3/SE4 are not used because they swap these).
ZONE_NAMES = {
    "SE1": ("SE1 (Lulea), Sweden", "SE"),
    "SE2": ("SE2 (Sundsvall), Sweden", "SE"),
    "SE3": ("SE3 (Stockholm), Sweden", "SE"),
    "SE4": ("SE4 (Malmo), Sweden", "SE"),
    "NO1": ("NO1 (Oslo), Norway", "NO"),
    "NO2": ("NO2 (Kristiansand), Norway", "NO"),
    "NO3": ("NO3 (Trondheim), Norway", "NO"),
    "NO4": ("NO4 (Tromso), Norway", "NO"),
    "NO5": ("NO5 (Bergen), Norway", "NO"),
}

# GCP region -> (place, alpha-2). Places from Google's region list.
GCP_PLACES = {
    "africa-south1": ("Johannesburg, South Africa", "ZA"),
    "asia-east1": ("Changhua County, Taiwan", "TW"),
    "asia-east2": ("Hong Kong", "HK"),
    "asia-northeast1": ("Tokyo, Japan", "JP"),
    "asia-northeast2": ("Osaka, Japan", "JP"),
    "asia-northeast3": ("Seoul, South Korea", "KR"),
    "asia-south1": ("Mumbai, India", "IN"),
    "asia-south2": ("Delhi, India", "IN"),
    "asia-southeast1": ("Singapore", "SG"),
    "asia-southeast2": ("Jakarta, Indonesia", "ID"),
    "australia-southeast1": ("Sydney, Australia", "AU"),
    "australia-southeast2": ("Melbourne, Australia", "AU"),
    "europe-central2": ("Warsaw, Poland", "PL"),
    "europe-north1": ("Hamina, Finland", "FI"),
    "europe-north2": ("Stockholm, Sweden", "SE"),
    "europe-southwest1": ("Madrid, Spain", "ES"),
    "europe-west1": ("St. Ghislain, Belgium", "BE"),
    "europe-west2": ("London, UK", "GB"),
    "europe-west3": ("Frankfurt, Germany", "DE"),
    "europe-west4": ("Eemshaven, Netherlands", "NL"),
    "europe-west6": ("Zurich, Switzerland", "CH"),
    "europe-west8": ("Milan, Italy", "IT"),
    "europe-west9": ("Paris, France", "FR"),
    "europe-west10": ("Berlin, Germany", "DE"),
    "europe-west12": ("Turin, Italy", "IT"),
    "me-central1": ("Doha, Qatar", "QA"),
    "me-central2": ("Dammam, Saudi Arabia", "SA"),
    "me-west1": ("Tel Aviv, Israel", "IL"),
    "northamerica-northeast1": ("Montreal, Quebec, Canada", "CA"),
    "northamerica-northeast2": ("Toronto, Ontario, Canada", "CA"),
    "northamerica-south1": ("Queretaro, Mexico", "MX"),
    "southamerica-east1": ("Sao Paulo, Brazil", "BR"),
    "southamerica-west1": ("Santiago, Chile", "CL"),
    "us-central1": ("Iowa, USA", "US"),
    "us-central2": ("Oklahoma, USA", "US"),
    "us-east1": ("South Carolina, USA", "US"),
    "us-east2": ("Georgia, USA", "US"),
    "us-east4": ("Northern Virginia, USA", "US"),
    "us-east5": ("Columbus, Ohio, USA", "US"),
    "us-south1": ("Dallas, Texas, USA", "US"),
    "us-west1": ("Oregon, USA", "US"),
    "us-west2": ("Los Angeles, California, USA", "US"),
    "us-west3": ("Salt Lake City, Utah, USA", "US"),
    "us-west4": ("Las Vegas, Nevada, USA", "US"),
}

# AWS region -> (place, alpha-2). CCF gives only the country.
AWS_PLACES = {
    "us-east-1": ("N. Virginia, USA", "US"),
    "us-east-2": ("Ohio, USA", "US"),
    "us-west-1": ("N. California, USA", "US"),
    "us-west-2": ("Oregon, USA", "US"),
    "us-gov-east-1": ("GovCloud US-East, USA", "US"),
    "us-gov-west-1": ("GovCloud US-West, USA", "US"),
    "af-south-1": ("Cape Town, South Africa", "ZA"),
    "ap-east-1": ("Hong Kong", "HK"),
    "ap-south-1": ("Mumbai, India", "IN"),
    "ap-northeast-3": ("Osaka, Japan", "JP"),
    "ap-northeast-2": ("Seoul, South Korea", "KR"),
    "ap-southeast-1": ("Singapore", "SG"),
    "ap-southeast-2": ("Sydney, Australia", "AU"),
    "ap-northeast-1": ("Tokyo, Japan", "JP"),
    "ca-central-1": ("Canada Central", "CA"),
    "cn-north-1": ("Beijing, China", "CN"),
    "cn-northwest-1": ("Ningxia, China", "CN"),
    "eu-central-1": ("Frankfurt, Germany", "DE"),
    "eu-west-1": ("Ireland", "IE"),
    "eu-west-2": ("London, UK", "GB"),
    "eu-south-1": ("Milan, Italy", "IT"),
    "eu-west-3": ("Paris, France", "FR"),
    "eu-north-1": ("Stockholm, Sweden", "SE"),
    "me-south-1": ("Bahrain", "BH"),
    "sa-east-1": ("Sao Paulo, Brazil", "BR"),
}

# Azure location column -> (place, alpha-2).
AZURE_PLACES = {
    "Iowa": ("Iowa, USA", "US"),
    "Virginia": ("Virginia, USA", "US"),
    "Georgia": ("Georgia, USA", "US"),
    "Illinois": ("Illinois, USA", "US"),
    "Texas": ("Texas, USA", "US"),
    "Wyoming": ("Wyoming, USA", "US"),
    "California": ("California, USA", "US"),
    "Washington": ("Washington, USA", "US"),
    "Arizona": ("Arizona, USA", "US"),
    "Hong Kong": ("Hong Kong", "HK"),
    "Singapore": ("Singapore", "SG"),
    "Ireland": ("Ireland", "IE"),
    "Netherlands": ("Netherlands", "NL"),
    "Pune": ("Pune, India", "IN"),
    "Chennai": ("Chennai, India", "IN"),
    "Mumbai": ("Mumbai, India", "IN"),
    "London": ("London, UK", "GB"),
    "Cardiff": ("Cardiff, UK", "GB"),
    "Paris": ("Paris, France", "FR"),
    "Helsinki": ("Helsinki, Finland", "FI"),
    "Frankfurt": ("Frankfurt, Germany", "DE"),
    "Brussels": ("Brussels, Belgium", "BE"),
    "Gavle": ("Gavle, Sweden", "SE"),
}

# Years behind CCF's factor sources (per shared/data/README.md).
CCF_SOURCE_YEAR = {"EPA": 2020, "EEA": 2021, "carbonfootprint.com": 2021, "EMA Singapore": 2021}
CCF_SOURCE_TEXT = {
    "EPA": "EPA eGRID2020, NERC {nerc}",
    "EEA": "EEA 2021",
    "carbonfootprint.com": "carbonfootprint.com 2021",
    "EMA Singapore": "Energy Market Authority Singapore",
}

# CER mix column -> factor key in CodeCarbon 3.3.2 carbon_intensity_per_source.json. "naturalGas" is
# not mapped to its "natural_gas" (743): that figure comes from energyusage's EPA fuel-carbon
# conversion (combustion CO2 at an implied ~14 MMBtu/MWh heat rate, about twice a gas plant's), not
# from power-plant data; GAS_LIFECYCLE_G_PER_KWH is used instead. "tidal" uses OCEAN_G_PER_KWH.
CANADA_MIX_FACTORS = {
    "coal": "coal",
    "petroleum": "petroleum",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "wind": "wind",
    "solar": "solar",
    "biomass": "biomass",
}


@dataclass
class Candidate:
    key: str
    entry: dict
    source_id: str
    aliases: list[str]


def r3(x: float) -> float:
    return round(float(x), 3)


def _country_names(pycountry, alpha2: str) -> list[str]:
    c = pycountry.countries.get(alpha_2=alpha2)
    if c is None:
        return []
    names = [c.name, c.alpha_2, c.alpha_3]
    for attr in ("common_name", "official_name"):
        if getattr(c, attr, None):
            names.append(getattr(c, attr))
    return names


def owid_countries(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    raw = json.loads((data_dir / CC / "global_energy_mix.json").read_text(encoding="utf-8"))
    out = []
    for alpha3, row in sorted(raw.items()):
        c = pycountry.countries.get(alpha_3=alpha3)
        if c is None:
            notes.append(f"OWID {alpha3}: no ISO 3166 country, left out")
            continue
        g = row.get("carbon_intensity")
        if not g or g <= 0:
            notes.append(f"OWID {alpha3} ({row['country_name']}): carbon_intensity {g!r}, left out")
            continue
        aliases = [row["country_name"], *_country_names(pycountry, c.alpha_2)]
        aliases += COUNTRY_EXTRA_ALIASES.get(c.alpha_2, [])
        out.append(
            Candidate(
                c.alpha_2,
                {
                    "name": row["country_name"],
                    "g_per_kwh": r3(g),
                    "year": int(row["year"]),
                    "source": "Our World in Data (Ember, Energy Institute), via CodeCarbon global_energy_mix.json",
                    "license": "CC-BY-4.0",
                    "kind": "country",
                    "country": c.alpha_2,
                    "emission_factor": LIFECYCLE,
                },
                "owid",
                aliases,
            )
        )
    return out


def us_states(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    """EPA eGRID2023 state CO2e total output emission rates (lb/MWh -> g/kWh), direct emissions."""
    raw = json.loads((data_dir / CC / "2023-usa_emissions.json").read_text(encoding="utf-8"))
    unit, meta = raw["_unit"]["emissions"], raw["_source"]
    if unit != "lbs/MWh" or meta["field"] != "STC2ERTA":
        raise ValueError(f"2023-usa_emissions.json: expected lbs/MWh of STC2ERTA, got {unit!r} of {meta['field']!r}")
    year = int(meta["year"])
    out = []
    for state, row in sorted(raw.items()):
        if state.startswith("_") or not isinstance(row, dict):
            continue  # "_unit" / "_source" metadata rows
        code = row["regionCode"]
        if code == "usa":
            notes.append(f"eGRID{year} national row 'usa' ({row['emissions']} lb/MWh) left out: every country "
                         "comes from OWID (lifecycle), so the US figure stays comparable with the others")
            continue
        sub = pycountry.subdivisions.get(code=f"US-{code}")
        name = sub.name if sub else state.title()
        lb = float(row["emissions"])
        aliases = [f"US-{code}", name, f"{code}, USA", f"{code}, US"]
        for suffix in ("USA", "US", "United States", "United States of America"):
            aliases.append(f"{name}, {suffix}")
        if code == "DC":
            aliases += ["Washington, DC", "Washington, D.C.", "Washington DC", "DC"]
        out.append(
            Candidate(
                f"US-{code}",
                {
                    "name": f"{name}, USA",
                    "g_per_kwh": r3(lb * LB_PER_MWH_TO_G_PER_KWH),
                    "year": year,
                    "source": f"EPA eGRID{year} state CO2e total output emission rate STC2ERTA "
                    f"({lb} lb/MWh x 0.453592), via CodeCarbon",
                    "license": "US-Government-Public-Domain",
                    "kind": "region",
                    "country": "US",
                    "emission_factor": DIRECT,
                },
                "egrid2023",
                aliases,
            )
        )
    return out


def canada_provinces(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    """CER 2023 generation mix (%) x per-source lifecycle factors (gCO2e/kWh)."""
    cc = data_dir / CC
    mixes = json.loads((cc / "2023-canada_energy_mix.json").read_text(encoding="utf-8"))
    factors = json.loads((cc / "carbon_intensity_per_source.json").read_text(encoding="utf-8"))
    fmap = {col: float(factors[k]) for col, k in CANADA_MIX_FACTORS.items()}
    fmap["naturalGas"] = GAS_LIFECYCLE_G_PER_KWH
    fmap["tidal"] = OCEAN_G_PER_KWH
    notes.append(
        f"Canada: natural gas at {GAS_LIFECYCLE_G_PER_KWH:g} gCO2e/kWh (IPCC AR5 lifecycle median, combined "
        f"cycle), not carbon_intensity_per_source.json's {factors['natural_gas']:g}"
    )
    by_name = {normalise(s.name): s for s in pycountry.subdivisions.get(country_code="CA")}
    out = []
    for prov, mix in sorted(mixes.items()):
        sub = by_name[normalise(prov)]
        shares = {k: float(v) for k, v in mix.items() if k != "total"}
        unknown = {k: v for k, v in shares.items() if k not in fmap and v}
        if unknown:
            notes.append(f"Canada {prov}: shares without a factor left out and renormalised: {unknown}")
        used = {k: v for k, v in shares.items() if k in fmap}
        total = sum(used.values())
        g = sum(v * fmap[k] for k, v in used.items()) / total
        code = sub.code.split("-")[1]
        name = sub.name
        aliases = [sub.code, name, f"{code}, Canada"]
        for suffix in ("Canada", "CA"):
            aliases.append(f"{name}, {suffix}")
        if sub.code == "CA-QC":
            aliases += ["Québec", "Québec, Canada"]
        mix_text = ", ".join(f"{k} {v:g}%" for k, v in sorted(used.items()) if v)
        out.append(
            Candidate(
                sub.code,
                {
                    "name": f"{name}, Canada",
                    "g_per_kwh": r3(g),
                    "year": 2023,
                    "source": (
                        "Canada Energy Regulator 2023 generation mix via CodeCarbon "
                        f"({mix_text}) x lifecycle factors from CodeCarbon 3.3.2 carbon_intensity_per_source.json "
                        f"(biomass {fmap['biomass']:g}); natural gas {GAS_LIFECYCLE_G_PER_KWH:g} "
                        "(IPCC AR5 lifecycle median, combined cycle) and tidal 17 gCO2e/kWh (IPCC AR5 ocean median); "
                        "'other' share (0 here) would be left out; shares renormalised to 100%"
                    ),
                    "license": "MIT",
                    "kind": "region",
                    "country": "CA",
                    "emission_factor": LIFECYCLE,
                },
                "cer2023",
                aliases,
            )
        )
    return out


def nordic(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    """Nordic bidding zones 2025 (ENTSO-E mix x lifecycle factors, computed upstream), gCO2e/kWh."""
    raw = json.loads((data_dir / CC / "nordic_emissions.json").read_text(encoding="utf-8"))
    out = []
    for zone, row in sorted(raw["data"].items()):
        if row["unit"] != "gCO2eq/kWh":
            raise ValueError(f"nordic_emissions.json {zone}: unexpected unit {row['unit']!r}")
        year = int(row["year"])
        if zone in ZONE_NAMES:
            src = (
                f"ENTSO-E actual generation per production type {year}, bidding zone {zone}: production mix x "
                "CodeCarbon carbon_intensity_per_source.json lifecycle factors, via CodeCarbon 3.3.2 "
                f"nordic_emissions.json; coverage {row['coverage']}, uncovered share counted at 0"
            )
            if row.get("note"):
                src += f"; upstream note: {row['note'].rstrip('.')}"
        else:  # FI: "prior value, unchanged" upstream, no method stated
            src = "CodeCarbon 3.3.2 nordic_emissions.json (ENTSO-E based; upstream calls it a prior value, unchanged)"
        entry = {
            "g_per_kwh": r3(row["emission_factor"]),
            "year": year,
            "source": src,
            "license": "MIT",
            "emission_factor": LIFECYCLE,
        }
        if zone in ZONE_NAMES:
            name, country = ZONE_NAMES[zone]
            entry.update(name=name, kind="zone", country=country)
            aliases = [zone, name, f"{zone}, {name.split(', ')[-1]}"]
        else:  # FI: the whole country is one bidding zone
            c = pycountry.countries.get(alpha_2=zone)
            entry.update(name=c.name, kind="country", country=zone)
            aliases = _country_names(pycountry, zone)
        out.append(Candidate(zone, entry, "nordic2025", aliases))
    return out


# pycountry's generic terms after a Chinese subdivision's name ("Beijing Shi", "Nei Mongol Zizhiqu").
CN_GENERIC_SUFFIXES = (" Sheng", " Shi", " Zizhiqu")


def china_provinces(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    """China MEE/NBS 2023 provincial average electricity CO2 factors (gCO2/kWh, CO2 only), direct."""
    raw = json.loads((data_dir / CC / "2023-china_provincial_emissions.json").read_text(encoding="utf-8"))
    meta = raw["metadata"]
    if meta["unit"] != "gCO2/kWh":
        raise ValueError(f"2023-china_provincial_emissions.json: unexpected unit {meta['unit']!r}")
    known = {s.code for s in pycountry.subdivisions.get(country_code="CN")}
    missing = sorted(known - set(raw["data"]))
    notes.append(f"China: no provincial figure for {missing} (not in the official table); the country entry CN applies")
    out = []
    for code, row in sorted(raw["data"].items()):
        sub = pycountry.subdivisions.get(code=code)
        if sub is None:
            raise ValueError(f"2023-china_provincial_emissions.json: {code!r} is not an ISO 3166-2 code")
        english = row["description"]  # "Beijing", "Inner Mongolia"
        iso_short = sub.name
        for suffix in CN_GENERIC_SUFFIXES:
            iso_short = iso_short.removesuffix(suffix)
        short = code.split("-")[1]
        names = list(dict.fromkeys([english, sub.name, iso_short, *row.get("names", [])]))
        aliases = [code, f"{short}, China"]
        for n in names:
            aliases.append(n)
            for suffix in ("China", "CN", "PRC", "People's Republic of China"):
                aliases.append(f"{n}, {suffix}")
        aliases += [f"{english} {sub.type}", f"{english} {sub.type}, China"]  # "Sichuan Province"
        out.append(
            Candidate(
                code,
                {
                    "name": f"{english}, China",
                    "g_per_kwh": r3(row["emission_factor"]),
                    "year": int(row["year"]),
                    "source": (
                        f"China MEE and NBS {row['year']} provincial average electricity CO2 emission factor "
                        f"(Announcement {meta['announcement']}, Table 3; CO2 only, location-based with "
                        "inter-provincial transfers), via CodeCarbon 3.3.2 2023-china_provincial_emissions.json"
                    ),
                    "license": "MIT",
                    "kind": "region",
                    "country": "CN",
                    "emission_factor": DIRECT,
                },
                "mee2023",
                aliases,
            )
        )
    return out


def gcp_google(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    out = []
    with (data_dir / "gcp-region-carbon" / "2024.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            region = row["Google Cloud Region"].strip()
            place, country = GCP_PLACES[region]
            out.append(
                Candidate(
                    f"gcp:{region}",
                    {
                        "name": f"{region} ({place}), Google Cloud",
                        "g_per_kwh": r3(row["Grid carbon intensity (gCO2eq / kWh)"]),
                        "year": 2024,
                        "source": "Google region-carbon-info 2024 (grid carbon intensity, location-based)",
                        "license": "Apache-2.0",
                        "kind": "cloud",
                        "country": country,
                        "emission_factor": DIRECT,
                    },
                    "google2024",
                    [f"gcp:{region}", region],
                )
            )
    return out


def _ccf_value(raw: str, label: str, notes: list[str]) -> float:
    text = raw.strip()
    if "." not in text and text.startswith("000"):
        # Upstream rows like "000077" lost the decimal point of "0.000077".
        fixed = "0." + text
        notes.append(f"CCF {label}: malformed factor {text!r} read as {fixed}")
        text = fixed
    return float(text) * T_PER_KWH_TO_G_PER_KWH


def _ccf_candidate(
    provider: str, region: str, display: str, cloud: str, place: str, country: str, row: dict, notes: list[str], aliases: list[str]
) -> Candidate:
    """One Cloud Carbon Footprint row (metric t CO2e/kWh) as a table candidate (gCO2e/kWh)."""
    src = row["Source"].strip()
    g = _ccf_value(row["CO2e (metric ton/kWh)"], f"{provider} {display}", notes)
    return Candidate(
        f"{provider}:{region}",
        {
            "name": f"{display} ({place}), {cloud}",
            "g_per_kwh": r3(g),
            "year": CCF_SOURCE_YEAR[src],
            "source": "Cloud Carbon Footprint (" + CCF_SOURCE_TEXT[src].format(nerc=row["NERC Region"].strip()) + ")",
            "license": "Apache-2.0",
            "kind": "cloud",
            "country": country,
            "emission_factor": DIRECT,
        },
        "ccf",
        aliases,
    )


def ccf(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    out = []
    d = data_dir / "ccf"
    with (d / "grid-emissions-factors-aws.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            region = row["Region"].strip()
            place, country = AWS_PLACES[region]
            out.append(_ccf_candidate("aws", region, region, "AWS", place, country, row, notes, [f"aws:{region}", region]))
    with (d / "grid-emissions-factors-azure.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            display = row["Region"].strip()
            region = display.lower().replace(" ", "")
            place, country = AZURE_PLACES[row["Location"].strip()]
            aliases = [f"azure:{region}", region, display, f"azure:{display}"]
            out.append(_ccf_candidate("azure", region, display, "Azure", place, country, row, notes, aliases))
    with (d / "grid-emissions-factors-gcp.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            region = row["Region"].strip()
            place, country = GCP_PLACES[region]
            g = _ccf_value(row["CO2e (metric ton/kWh)"], f"gcp {region}", notes)
            out.append(
                Candidate(
                    f"gcp:{region}",
                    {
                        "name": f"{region} ({place}), Google Cloud",
                        "g_per_kwh": r3(g),
                        # CCF's Google figures predate Google's 2024 file.
                        "year": 2021,
                        "source": "Cloud Carbon Footprint (Google 2021)",
                        "license": "Apache-2.0",
                        "kind": "cloud",
                        "country": country,
                        "emission_factor": DIRECT,
                    },
                    "ccf",
                    [f"gcp:{region}", region],
                )
            )
    return out


def codecarbon_cloud(data_dir: Path, pycountry, notes: list[str]) -> list[Candidate]:
    """CodeCarbon cloud-impact.csv: only used for GCP regions missing from Google's 2024 file."""
    out = []
    with (data_dir / CC_OLD / "cloud-impact.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["provider"].strip() != "gcp":
                continue
            region = row["region"].strip()
            if region not in GCP_PLACES:
                notes.append(f"CodeCarbon cloud-impact.csv: unknown GCP region id {region!r} left out")
                continue
            place, country = GCP_PLACES[region]
            out.append(
                Candidate(
                    f"gcp:{region}",
                    {
                        "name": f"{region} ({place}), Google Cloud",
                        "g_per_kwh": r3(row["impact"]),
                        "year": 2024,
                        "source": "Google region carbon data, via CodeCarbon cloud-impact.csv",
                        "license": "MIT",
                        "kind": "cloud",
                        "country": country,
                        "emission_factor": DIRECT,
                    },
                    "cc-cloud",
                    [f"gcp:{region}", region],
                )
            )
    return out


KIND_ORDER = {"country": 0, "region": 1, "zone": 2, "cloud": 3}


def build(data_dir: Path) -> tuple[dict, list[str]]:
    import pycountry

    notes: list[str] = []
    candidates: list[Candidate] = []
    for fn in (owid_countries, us_states, canada_provinces, nordic, china_provinces, gcp_google, ccf, codecarbon_cloud):
        candidates += fn(data_dir, pycountry, notes)

    by_key: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_key.setdefault(cand.key, []).append(cand)

    chosen: dict[str, Candidate] = {}
    superseded = []
    for key, cands in sorted(by_key.items()):
        cands.sort(key=lambda c: (-c.entry["year"], SOURCE_PRIORITY[c.source_id]))
        chosen[key] = cands[0]
        for loser in cands[1:]:
            superseded.append(
                {
                    "key": key,
                    "dropped_source": loser.entry["source"],
                    "dropped_year": loser.entry["year"],
                    "dropped_g_per_kwh": loser.entry["g_per_kwh"],
                    "dropped_emission_factor": loser.entry["emission_factor"],
                    "kept_source": cands[0].entry["source"],
                    "kept_year": cands[0].entry["year"],
                    "kept_emission_factor": cands[0].entry["emission_factor"],
                }
            )

    # Aliases: canonical keys first, then aliases in kind order (countries win
    # name clashes such as "Georgia"); an unprefixed cloud id that two
    # providers share would be dropped as ambiguous.
    aliases: dict[str, str] = {}
    for key in chosen:
        aliases[normalise(key)] = key
    ordered = sorted(chosen.values(), key=lambda c: (KIND_ORDER[c.entry["kind"]], c.key))
    clashes: dict[str, set[str]] = {}
    for cand in ordered:
        for alias in [cand.entry["name"], *cand.aliases]:
            n = normalise(alias)
            if not n:
                continue
            if n in aliases and aliases[n] != cand.key:
                clashes.setdefault(n, {aliases[n]}).add(cand.key)
                continue
            aliases[n] = cand.key
    for n, keys in sorted(clashes.items()):
        owner = aliases[n]
        kinds = {chosen[k].entry["kind"] for k in keys}
        if kinds == {"cloud"} and ":" not in n:
            del aliases[n]
            notes.append(f"alias {n!r} ambiguous between {sorted(keys)}: dropped")
        else:
            notes.append(f"alias {n!r} clashes between {sorted(keys)}: kept for {owner}")

    for cand in chosen.values():  # ISO 3166-1 alpha-3 of each entry's country (CodeCarbon's country_iso_code)
        cand.entry["country_alpha3"] = pycountry.countries.get(alpha_2=cand.entry["country"]).alpha_3

    factors = json.loads((data_dir / CC / "carbon_intensity_per_source.json").read_text(encoding="utf-8"))
    table = {
        "schema_version": 1,
        "unit": "gCO2e/kWh",
        "description": "Grid carbon intensity (location-based, gCO2e per kWh) per location; each entry's "
        "emission_factor says whether it counts lifecycle or direct (combustion-only) emissions; generated by "
        "tools/build_intensity_table.py from open data; see docs/grid-intensity.md.",
        "emission_factors": {
            LIFECYCLE: "upstream (fuel supply, plant construction) and combustion emissions per kWh generated",
            DIRECT: "emissions at the power plant only (combustion), per kWh generated",
        },
        "world_average": {
            "name": "World average",
            "g_per_kwh": r3(factors["world_average"]),
            "year": 2019,
            "source": "IEA Global Energy & CO2 Status Report 2019, via CodeCarbon",
            "license": "MIT",
            "emission_factor": DIRECT,
        },
        "locations": {k: c.entry for k, c in sorted(chosen.items())},
        "aliases": dict(sorted(aliases.items())),
        "superseded": superseded,
        "sources": SOURCES,
    }
    return table, notes


def dumps(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "airflow_carbon" / "core" / "data" / "grid_intensity.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    table, notes = build(args.data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(table), encoding="utf-8")
    if not args.quiet:
        counts: dict[str, int] = {}
        for entry in table["locations"].values():
            counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
        print(f"wrote {args.out}: {len(table['locations'])} locations {dict(sorted(counts.items()))}, "
              f"{len(table['aliases'])} aliases, {len(table['superseded'])} superseded rows", file=sys.stderr)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
