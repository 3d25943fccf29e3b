"""The live sources' Connection types as Airflow sees them (provider info, the Connection form, the
hooks' Test button) and the specs they make, against the local simulators."""

from __future__ import annotations

import json
import time

import pytest

from carbon_testing.gridsim import ElectricityMapsSim, UKCarbonIntensitySim, WattTimeSim

pytestmark = pytest.mark.airflow


def test_the_three_connection_types_are_registered_with_their_forms():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    hooks = pm.hooks
    for conn_type, name in (("electricitymaps", "Electricity Maps"), ("watttime", "WattTime"), ("uk_carbon_intensity", "GB Carbon Intensity")):
        assert hooks[conn_type].hook_name == name
        assert hooks[conn_type].connection_id_attribute_name == "intensity_conn_id"
    forms = pm.field_behaviours
    assert forms["electricitymaps"]["relabeling"]["password"] == "API token"
    assert "login" in forms["electricitymaps"]["hidden_fields"] and "password" in forms["uk_carbon_intensity"]["hidden_fields"]
    assert forms["watttime"]["relabeling"] == {"host": "API base URL", "login": "Username", "password": "Password"}


def _conn(monkeypatch, conn_id, **fields):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_a_spec_from_each_connection_type(monkeypatch):
    from airflow_carbon.hooks.grid_intensity import live_spec

    _conn(monkeypatch, "em", conn_type="electricitymaps", password="tok-9", extra={"emission_factor": "direct"})
    _conn(monkeypatch, "wt", conn_type="watttime", host="http://127.0.0.1:9", login="alice", password="pw-9")
    _conn(monkeypatch, "gb", conn_type="uk_carbon_intensity")
    em, wt, gb = live_spec("em"), live_spec("wt"), live_spec("gb")
    assert (em.source, em.base_url, em.token, em.factor, em.credentials) == ("electricitymaps", None, "tok-9", "direct", "Connection 'em'")
    assert (wt.base_url, wt.username, wt.password) == ("http://127.0.0.1:9", "alice", "pw-9")
    assert (gb.source, gb.base_url) == ("uk_carbon_intensity", None)
    assert "tok-9" not in repr(em) and "pw-9" not in repr(wt)
    _conn(monkeypatch, "hf", conn_type="huggingface", password="hf_x")
    with pytest.raises(ValueError, match="Connection 'hf' has type 'huggingface'; a live grid-intensity source needs type electricitymaps or watttime or uk_carbon_intensity"):
        live_spec("hf")


def test_the_test_buttons_make_one_real_request(monkeypatch):
    from airflow_carbon.hooks.grid_intensity import ElectricityMapsHook, UKCarbonIntensityHook, WattTimeHook

    now = time.time()
    with UKCarbonIntensitySim({now - now % 1800: 123}) as uk, \
            ElectricityMapsSim({"DE": {now - now % 3600: 321}}, token="tok", now_s=now) as em, \
            WattTimeSim({"CAISO_NORTH": [900.0]}, username="u", password="p", now_s=now) as wt:
        _conn(monkeypatch, "uk_carbon_intensity_default", conn_type="uk_carbon_intensity", host=uk.url)
        _conn(monkeypatch, "electricitymaps_default", conn_type="electricitymaps", host=em.url, password="tok")
        _conn(monkeypatch, "wt_bad", conn_type="watttime", host=wt.url, login="u", password="wrong")
        assert UKCarbonIntensityHook().test_connection() == (True, f"Great Britain: 123 gCO2e/kWh from {uk.url}")
        assert ElectricityMapsHook().test_connection() == (True, f"DE: 321 gCO2e/kWh from Electricity Maps at {em.url}")
        ok, message = WattTimeHook("wt_bad").test_connection()
        assert not ok and message == "watttime: HTTP 403: credentials refused (credentials from Connection 'wt_bad')"
