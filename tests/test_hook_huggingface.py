"""The Hugging Face hook and its Connection type as Airflow sees them: registered by the provider, the
form's fields, the credentials from a real Connection (environment-defined, as Airflow reads them),
the HF_TOKEN / HF_ENDPOINT fallback, and the token masked in task logs."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.airflow


def test_the_connection_type_is_registered_with_its_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.hooks["huggingface"].hook_class_name == "airflow_carbon.hooks.huggingface.HuggingFaceHook"
    behaviour = manager.field_behaviours["huggingface"]
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "login", "extra"}
    assert behaviour["relabeling"] == {"host": "Hub endpoint", "password": "Access token"}


def test_the_hook_tells_the_same_form():
    from airflow_carbon.hooks.huggingface import HuggingFaceHook
    from airflow_carbon.provider import HUGGINGFACE_CONNECTION

    behaviour = HuggingFaceHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == HUGGINGFACE_CONNECTION["ui-field-behaviour"]["hidden-fields"]
    assert (HuggingFaceHook.conn_type, HuggingFaceHook.default_conn_name) == ("huggingface", "huggingface_default")


@pytest.mark.parametrize(
    "uri, endpoint",
    [
        ("huggingface://:hf_secret@hub.example.org", "https://hub.example.org"),
        ("huggingface://:hf_secret@127.0.0.1:8123?__extra__=%7B%7D", "https://127.0.0.1:8123"),
    ],
)
def test_credentials_come_from_the_connection(monkeypatch, uri, endpoint):
    from airflow_carbon.hooks.huggingface import HuggingFaceHook

    monkeypatch.setenv("AIRFLOW_CONN_HF_TEST_HOOK", uri)
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert HuggingFaceHook(hf_conn_id="hf_test_hook").get_credentials() == (endpoint, "hf_secret")


def test_a_full_url_host_and_the_environment_fallback(monkeypatch):
    from airflow_carbon.hooks.huggingface import HuggingFaceHook

    monkeypatch.setenv("AIRFLOW_CONN_HF_URL", json.dumps({"conn_type": "huggingface", "host": "http://127.0.0.1:9000/", "password": "hf_json"}))
    assert HuggingFaceHook(hf_conn_id="hf_url").get_credentials() == ("http://127.0.0.1:9000", "hf_json")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080/")
    assert HuggingFaceHook(hf_conn_id="does_not_exist").get_credentials() == ("http://mirror.example:8080", "hf_from_env")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HF_ENDPOINT")
    assert HuggingFaceHook(hf_conn_id="does_not_exist").get_credentials() == ("https://huggingface.co", None)


def test_the_token_is_masked_once_read(monkeypatch):
    from airflow.sdk.log import redact  # what Airflow's task logs go through

    from airflow_carbon.hooks.huggingface import HuggingFaceHook

    monkeypatch.setenv("AIRFLOW_CONN_HF_MASK", "huggingface://:hf_mask_me_123@hub.example.org")
    HuggingFaceHook(hf_conn_id="hf_mask").get_credentials()
    assert "hf_mask_me_123" not in str(redact("token hf_mask_me_123 in a log line"))
