"""The card edit on real public model cards (tests/data/model_cards: their sources and licences are in
SOURCES.md, their edge cases in cases.json): huggingface_hub's own ModelCard.load, from the file on
disk, reads every other key and the body unchanged and our co2_eq_emissions exactly; the bytes that
change lie inside the card's old co2 entry, or nothing is removed at all; cards huggingface_hub
cannot read are refused and left as they are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_carbon import CardError, edit_card_metadata

pytestmark = pytest.mark.unit

KEY = "co2_eq_emissions"
CORPUS = Path(__file__).parent / "data" / "model_cards"
CASES: dict[str, list[str]] = json.loads((CORPUS / "cases.json").read_text())
CO2 = {
    "emissions": 3412.77,
    "source": "airflow-carbon 0.1.0 (DAG train_llm): GPU: NVML energy counters; CPU and RAM estimated",
    "training_type": "fine-tuning",
    "geographical_location": "Quebec, Canada",
    "hardware_used": "8 x NVIDIA H200, 2 x AMD EPYC 9654 96-Core Processor",
}


def test_the_corpus_is_the_committed_files_and_each_has_a_source():
    cards = sorted(p.name for p in CORPUS.glob("*.md") if p.name != "SOURCES.md")
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert cards == sorted(CASES) and len(cards) >= 30
    assert all(f"`{name}`" in sources for name in cards)


def _load(path: Path):
    from huggingface_hub import ModelCard

    card = ModelCard.load(path, ignore_metadata_errors=True)
    return card.data.to_dict(), card.text


def _co2_entry_lines(text: str) -> range | None:
    """The line numbers of the card's top-level co2_eq_emissions entry: its key line and the indented
    lines under it (a blank line or a column-0 line ends it)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"""["']?co2_eq_emissions["']?\s*:""", line)), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
        end += 1
    return range(start, end)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_real_card_keeps_everything_huggingface_hub_reads_and_every_other_byte(name, tmp_path):
    original = (CORPUS / name).read_bytes()
    text = original.decode("utf-8")
    if "invalid" in CASES[name]:
        with pytest.raises(CardError):
            edit_card_metadata(text, CO2)
        return
    before_meta, before_body = _load(CORPUS / name)
    new = edit_card_metadata(text, CO2)
    (tmp_path / "README.md").write_bytes(new.encode("utf-8"))
    after_meta, after_body = _load(tmp_path / "README.md")
    assert after_meta[KEY] == CO2
    assert {k: v for k, v in after_meta.items() if k != KEY} == {k: v for k, v in before_meta.items() if k != KEY}
    assert after_body == before_body
    prefix = next((i for i, (a, b) in enumerate(zip(text, new, strict=False)) if a != b), len(text))
    suffix = next((i for i, (a, b) in enumerate(zip(reversed(text), reversed(new), strict=False)) if a != b), len(text))
    suffix = min(suffix, len(text) - prefix)
    if KEY in before_meta:  # what changed lies within the old entry's lines
        entry = _co2_entry_lines(text)
        assert entry is not None
        first_line = text.count("\n", 0, prefix)
        last_line = text.count("\n", 0, max(prefix, len(text) - suffix - 1))
        assert first_line in entry and last_line in entry, (name, first_line, last_line, entry)
    else:  # nothing removed: the old text is the new one less the inserted lines
        assert prefix + suffix == len(text)
    assert new.startswith("\ufeff") == text.startswith("\ufeff")
    assert new.endswith(("\n", "\r")) == text.endswith(("\n", "\r")) or not text.strip()
    assert edit_card_metadata(new, CO2) == new


@pytest.mark.parametrize("name", sorted(n for n, tags in CASES.items() if "co2-mapping" in tags or "co2-number" in tags))
def test_a_card_with_emissions_from_elsewhere_has_that_entry_replaced_in_place(name):
    text = (CORPUS / name).read_bytes().decode("utf-8")
    new = edit_card_metadata(text, CO2)
    entry = _co2_entry_lines(text)
    lines = text.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    assert new_lines[: entry.start] == lines[: entry.start]  # everything before the entry, to the byte
    tail = len(lines) - entry.stop
    assert new_lines[len(new_lines) - tail :] == lines[entry.stop :]  # and everything after it
    assert new.count(KEY) == text.count(KEY)  # replaced, not added


def test_the_crlf_card_gets_crlf_lines():
    text = (CORPUS / "huggingface__huggingface_hub__sample_windows_line_breaks.md").read_bytes().decode("utf-8")
    new = edit_card_metadata(text, CO2)
    assert new.count("\r\n") == new.count("\n") > text.count("\n")


def test_cases_json_is_what_the_bytes_say():
    """cases.json, which picks the assertions above, is recomputed from the files (tag_cases.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tag_cases", CORPUS / "tag_cases.py")
    tag_cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tag_cases)
    for name, tags in CASES.items():
        expected = tag_cases.tags_for((CORPUS / name).read_bytes())
        if name.startswith("huggingface__huggingface_hub__"):
            expected.insert(0, "hf-fixture")
        assert tags == expected, name
