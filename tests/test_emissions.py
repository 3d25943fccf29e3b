import math

import pytest

from airflow_carbon.core.emissions import emissions_g, validate_pue

pytestmark = pytest.mark.unit


def test_grams_are_kwh_times_pue_times_intensity():
    assert emissions_g(2.0, 50.0, 1.2) == pytest.approx(120.0)
    assert emissions_g(0.0, 500.0, 1.5) == 0.0


@pytest.mark.parametrize("bad", [-1, 0.5, math.nan, math.inf, "abc", True])
def test_bad_pue_names_the_value(bad):
    with pytest.raises(ValueError) as err:
        validate_pue(bad)
    assert repr(bad) in str(err.value) and ">= 1.0" in str(err.value)


def test_pue_accepts_numbers_and_numeric_text():
    assert validate_pue(1) == 1.0
    assert validate_pue("1.1") == 1.1
