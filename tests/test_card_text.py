import pytest

from airflow_carbon.card_text import CardError, existing_co2, metadata, with_co2

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


def test_a_bare_number_is_read_as_emissions():
    assert existing_co2("---\nco2_eq_emissions: 7.5\n---\n") == {"emissions": 7.5}


@pytest.mark.parametrize("card", ["---\nlicense: [mit\n---\n", "---\n- a\n- b\n---\n", "---\nlicense: mit\n"])
def test_malformed_front_matter_is_refused(card):
    with pytest.raises(CardError):
        with_co2(card, CO2)
