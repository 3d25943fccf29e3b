"""`airflow-carbon card` as a user runs it: records from real `airflow-carbon measure` runs (on the
simulated GPU) written into a real public model card, read back with huggingface_hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_testing import fake_nvml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "tests" / "data" / "model_cards" / "Nkluge-correa__Aira__Aira-2-1B1.md"  # has CodeCarbon's co2 entry
PLAIN = ROOT / "tests" / "data" / "model_cards" / "leliuga__cohere-configurations__typhoon-7B.md"  # blank line first


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "airflow_carbon", *args], capture_output=True, text=True, cwd=ROOT, env=os.environ)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two records of real `airflow-carbon measure` runs on the simulated GPU (read only: made once)."""
    tmp = tmp_path_factory.mktemp("records")
    paths = []
    with fake_nvml.activate("count=1; power=const:250"):
        for i in range(2):
            path = tmp / f"try{i}.json"
            run = _cli("measure", "--location", "FR", "-o", str(path), "--", sys.executable, "-c", "import time; time.sleep(0.3)")
            assert run.returncode == 0, run.stderr
            paths.append(path)
    return paths


def _hub_reads(path: Path):
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    return card.data.to_dict(), card.text


def test_card_writes_every_records_grams_into_a_real_card_and_a_rerun_changes_nothing(records, tmp_path):
    card = tmp_path / "README.md"
    card.write_bytes(PLAIN.read_bytes())
    before = _hub_reads(card)
    run = _cli("card", *map(str, records), "--training-type", "fine-tuning", "--apply", str(card))
    assert run.returncode == 0, run.stderr
    meta, body = _hub_reads(card)
    grams = sum(json.loads(p.read_text())["emissions_g"] for p in records)
    co2 = meta.pop("co2_eq_emissions")
    assert co2["emissions"] == pytest.approx(grams, rel=1e-5) and co2["geographical_location"] == "France"
    assert co2["training_type"] == "fine-tuning" and co2["hardware_used"].startswith("1 x NVIDIA H200")
    assert (meta, body) == before
    assert card.read_bytes().startswith(b"\n---\n")  # the card's blank first line is kept
    written = card.read_bytes()
    again = _cli("card", *map(str, records), "--training-type", "fine-tuning", "--apply", str(card))
    assert again.returncode == 0 and "unchanged" in again.stderr
    assert card.read_bytes() == written


def test_emissions_from_elsewhere_are_refused_unless_asked_and_the_card_is_left_as_it_was(records, tmp_path):
    card = tmp_path / "README.md"
    card.write_bytes(CARD.read_bytes())
    refused = _cli("card", *map(str, records), "--training-type", "fine-tuning", "--apply", str(card))
    assert refused.returncode == 2 and "already has co2_eq_emissions from elsewhere (CodeCarbon: 1710 g)" in refused.stderr
    assert card.read_bytes() == CARD.read_bytes()
    preview = _cli("card", *map(str, records), "--training-type", "fine-tuning", "--apply", str(card), "--on-existing", "add", "--dry-run")
    assert preview.returncode == 0 and card.read_bytes() == CARD.read_bytes()
    added = _cli("card", *map(str, records), "--training-type", "fine-tuning", "--apply", str(card), "--on-existing", "add")
    assert added.returncode == 0, added.stderr
    assert card.read_text(encoding="utf-8") == preview.stdout
    co2 = _hub_reads(card)[0]["co2_eq_emissions"]
    grams = sum(json.loads(p.read_text())["emissions_g"] for p in records)
    assert co2["emissions"] == pytest.approx(1710 + grams, rel=1e-5) and "earlier figure of 1710 g (CodeCarbon)" in co2["source"]


def test_a_bad_record_or_an_unreadable_card_changes_nothing(records, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(records[0].read_text()), "pue": 0.5}))
    card = tmp_path / "README.md"
    card.write_bytes(PLAIN.read_bytes())
    run = _cli("card", str(records[0]), str(bad), "--training-type", "fine-tuning", "--apply", str(card))
    assert run.returncode == 2 and f"{bad}:1: invalid record field pue" in run.stderr
    assert card.read_bytes() == PLAIN.read_bytes()
    card.write_text("---\nlicense: [mit\n---\n")
    run = _cli("card", str(records[0]), "--training-type", "fine-tuning", "--apply", str(card))
    assert run.returncode == 2 and "malformed" in run.stderr and card.read_text() == "---\nlicense: [mit\n---\n"


def test_without_apply_the_yaml_is_printed_and_nothing_is_written(records, tmp_path):
    import yaml

    run = _cli("card", *map(str, records), "--training-type", "pre-training")
    assert run.returncode == 0, run.stderr
    co2 = yaml.safe_load(run.stdout)["co2_eq_emissions"]
    grams = sum(json.loads(p.read_text())["emissions_g"] for p in records)
    assert co2["emissions"] == pytest.approx(grams, rel=1e-5) and co2["training_type"] == "pre-training"
    assert sorted(co2) == ["emissions", "geographical_location", "hardware_used", "source", "training_type"]
    assert not any(tmp_path.iterdir()) and sorted(p.name for p in records[0].parent.iterdir()) == ["try0.json", "try1.json"]
