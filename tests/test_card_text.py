import pytest

from airflow_carbon.card.text import CardError, existing_co2, metadata, with_co2

pytestmark = pytest.mark.unit

CO2 = {"emissions": 12.5, "source": "airflow-carbon 0.1.0 (DAG d): GPU: NVML energy counters", "training_type": "fine-tuning",
       "geographical_location": "Quebec, Canada", "hardware_used": "2 x NVIDIA H200"}


def test_keeps_every_other_byte_key_order_comments_and_body():
    card = (
        "---\r\nlicense: apache-2.0  # chosen by legal\r\ntags:\r\n- llm\r\n- carbon\r\nco2_eq_emissions:\r\n"
        "  emissions: 99\r\n  source: old\r\n\r\nlanguage: [en, fr]\r\n---\r\n\r\n# My model\r\nBody text, *kept*.\r\n"
    )
    new = with_co2(card, CO2)
    assert new.startswith("---\r\nlicense: apache-2.0  # chosen by legal\r\ntags:\r\n- llm\r\n- carbon\r\nco2_eq_emissions:\r\n")
    assert new.endswith("\r\n\r\nlanguage: [en, fr]\r\n---\r\n\r\n# My model\r\nBody text, *kept*.\r\n")
    assert existing_co2(new) == CO2
    assert list(metadata(new)) == ["license", "tags", "co2_eq_emissions", "language"]
    assert with_co2(new, CO2) == new  # idempotent


def test_adds_the_block_when_missing_and_front_matter_when_absent():
    assert existing_co2(with_co2("---\nlicense: mit\n---\nbody\n", CO2)) == CO2
    plain = "# Just a README\n"
    new = with_co2(plain, CO2)
    assert new.endswith("---\n" + plain) and existing_co2(new) == CO2
    assert existing_co2(with_co2(None, CO2)) == CO2


def test_a_value_that_ends_in_a_no_break_space_is_replaced_whole():
    """YAML reads U+00A0 as text, not as the space Python's strip() takes it for (found by Hypothesis)."""
    co2 = {**CO2, "source": "\xa0"}
    once = with_co2("---\n---", co2)
    assert existing_co2(once) == co2 and with_co2(once, co2) == once
    assert existing_co2(with_co2(once, CO2)) == CO2


def test_a_bare_number_is_read_as_emissions():
    assert existing_co2("---\nco2_eq_emissions: 7.5\n---\n") == {"emissions": 7.5}


@pytest.mark.parametrize("card", ["---\nlicense: [mit\n---\n", "---\n- a\n- b\n---\n", "---\nlicense: mit\n"])
def test_malformed_front_matter_is_refused(card):
    with pytest.raises(CardError):
        with_co2(card, CO2)


# -- the cases real Hub cards have (issue 11); each checked through huggingface_hub's own reader ------
def _hub_reads(text: str, tmp_path) -> tuple[dict, str]:
    """What huggingface_hub reads from ``text`` saved as README.md: (metadata, body)."""
    from huggingface_hub import ModelCard

    path = tmp_path / "README.md"
    path.write_bytes(text.encode("utf-8"))
    card = ModelCard.load(path)
    return card.data.to_dict(), card.text


def _others(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k != "co2_eq_emissions"}


ISSUE_CASES = {
    "blank line before the opening fence": ("\n---\nlicense: mit\ntags:\n- a\n---\n# Body\n", None),
    "spaces before the opening fence": ("  \n ---\nlicense: mit\n---\n# Body\n", None),
    "an empty fence block before the metadata": ("---\n---\nlicense: mit\n---\n# Body\n", None),
    "an empty fence block and no metadata": ("---\n---\n# Body\n---\nmore\n", None),
    "no newline after the closing fence": ("---\nlicense: mit\n---", None),
    "LF front matter over a CRLF body": ("---\nlicense: mit\n---\r\n# Body\r\nline\r\n", None),
    "CR CR LF line endings": ("---\r\r\nlicense: mit\r\r\ntags:\r\r\n- a\r\r\n---\r\r\n# Body\r\r\n", None),
    "CR CR LF with a YAML document marker": ("---\r\r\n---\r\r\n---", None),  # found by hypothesis
    "CR CR LF inside CRLF fences": ("---\r\nlicense: mit\r\r\ntags:\r\n- a\r\n---\r\n# Body\r\r\n", None),
    "a BOM": ("\ufeff---\nlicense: mit\n---\nbody\n", None),
    "a quoted key": ('---\n"co2_eq_emissions":\n  emissions: 5\nlicense: mit\n---\nbody\n', '"co2_eq_emissions":'),
    "a closing fence with a trailing space": ("---\nlicense: mit\n--- \nbody\n", None),
    "a comment after the co2 block": ("---\nco2_eq_emissions:\n  emissions: 5\n\n# a comment\nlicense: mit\n---\nbody\n", "\n\n# a comment\nlicense: mit\n---\nbody\n"),
    "a block scalar last": ("---\ndescription: |\n  hello\n  world\n---\nbody\n", "description: |\n  hello\n  world\n---\nbody\n"),
    "a flow mapping": ("---\n{license: mit, tags: [a]}\n---\nbody\n", None),
    "an indented mapping": ("---\n  license: mit\n  tags:\n  - a\n---\nbody\n", "  co2_eq_emissions:\n    emissions: 12.5\n"),
}


@pytest.mark.parametrize("card, kept", ISSUE_CASES.values(), ids=ISSUE_CASES.keys())
def test_real_card_shapes_keep_what_huggingface_hub_reads_and_every_other_byte(card, kept, tmp_path):
    from airflow_carbon import edit_card_metadata

    before_meta, before_body = _hub_reads(card, tmp_path)
    new = edit_card_metadata(card, CO2)
    after_meta, after_body = _hub_reads(new, tmp_path)
    assert after_meta["co2_eq_emissions"] == CO2
    assert _others(after_meta) == _others(before_meta) and after_body == before_body
    if "co2_eq_emissions" not in card:  # nothing removed: the new text is the old one with lines inserted
        prefix = next((i for i, (a, b) in enumerate(zip(card, new, strict=False)) if a != b), len(card))
        assert new.endswith(card[prefix:]) and new.startswith(card[:prefix])
    if kept:
        assert kept in new
    assert new.count("co2_eq_emissions") == max(1, card.count("co2_eq_emissions"))  # replaced, not duplicated
    assert new.startswith("\ufeff") == card.startswith("\ufeff")
    assert edit_card_metadata(new, CO2) == new  # idempotent


def test_the_new_lines_use_the_front_matters_line_ending_not_the_bodys():
    new = with_co2("---\nlicense: mit\n---\r\n# Body\r\n", CO2)
    front = new.split("---", 2)[1]
    assert "\r" not in front and new.endswith("---\r\n# Body\r\n")
    crlf = with_co2("---\r\nlicense: mit\r\n---\n# Body\n", CO2)
    assert crlf.split("---", 2)[1].count("\n") == crlf.split("---", 2)[1].count("\r\n")


def test_cards_huggingface_hub_cannot_read_are_refused_and_named():
    with pytest.raises(CardError, match="never closes"):
        with_co2("\n\n---\nlicense: mit\n# no closing fence\n", CO2)
    with pytest.raises(CardError, match="not a mapping"):
        with_co2("---\n- a\n---\n", CO2)
    with pytest.raises(CardError, match="malformed"):
        with_co2("---\na: 1\n...\nb: 2\n---\n", CO2)  # two YAML documents between the fences


def test_edit_card_metadata_wants_a_mapping():
    from airflow_carbon import edit_card_metadata

    with pytest.raises(TypeError, match="co2_eq_emissions must be a dict"):
        edit_card_metadata("---\nlicense: mit\n---\n", 12.5)
