"""Airflow layer: ``HuggingFaceHook``, the Hub's endpoint and token from an Airflow Connection.

Connection type ``huggingface`` (registered in the provider info, so Airflow's Connection form shows a
"Hub endpoint" and an "Access token" field): the token is the Connection's password, the endpoint its
host (a full URL, or a host name with the schema and port fields). Where the Connection does not exist
or leaves them empty, ``HF_TOKEN`` and ``HF_ENDPOINT`` decide, then the public Hub. The token is
masked in task logs as soon as it is read, and is never returned in anything that reaches XCom.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from huggingface_hub import HfApi

PUBLIC_ENDPOINT = "https://huggingface.co"


class HuggingFaceHook(BaseHook):
    """The Hugging Face Hub through an Airflow Connection (``hf_conn_id``, default ``huggingface_default``)."""

    conn_name_attr = "hf_conn_id"
    default_conn_name = "huggingface_default"
    conn_type = "huggingface"
    hook_name = "Hugging Face Hub"

    def __init__(self, hf_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hf_conn_id = hf_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The Connection form, as the provider info declares it (for UIs that ask the hook)."""
        from airflow_carbon.provider import HUGGINGFACE_CONNECTION

        behaviour = HUGGINGFACE_CONNECTION["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"], "relabeling": behaviour["relabeling"], "placeholders": behaviour["placeholders"],
        }

    def _connection(self) -> Any:
        try:
            return self.get_connection(self.hf_conn_id)
        except Exception:  # no such Connection: the environment decides
            return None

    def get_credentials(self) -> tuple[str, str | None]:
        """(endpoint URL, token or None): the Connection's host and password, else HF_ENDPOINT / HF_TOKEN."""
        conn = self._connection()
        token = (conn.password if conn is not None else None) or os.environ.get("HF_TOKEN") or None
        if token:
            from airflow.sdk.log import mask_secret

            mask_secret(token)
        endpoint = os.environ.get("HF_ENDPOINT") or PUBLIC_ENDPOINT
        if conn is not None and conn.host:
            host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
            endpoint = f"{host}:{conn.port}" if conn.port and host.count(":") < 2 else host
        return endpoint.rstrip("/"), token

    def get_conn(self) -> HfApi:
        """An ``HfApi`` for the Connection's endpoint and token (huggingface_hub reads ``HF_ENDPOINT`` only at
        import, so the endpoint is always passed explicitly)."""
        from huggingface_hub import HfApi

        endpoint, token = self.get_credentials()
        return HfApi(endpoint=endpoint, token=token)

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: who the token belongs to, on the Connection's endpoint."""
        try:
            user = self.get_conn().whoami()
        except Exception as exc:
            return False, f"the Hub refused the token: {exc}"
        return True, f"token of {user.get('name', 'an unnamed account')} at {self.get_credentials()[0]}"
