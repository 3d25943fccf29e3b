"""A real ``airflow api-server`` on 127.0.0.1 for the UI tests and the UI benchmark, on the caller's
metadata DB (its AIRFLOW_HOME; SQLite in the tests).

Users (SimpleAuthManager, see ui_auth.py): ``admin`` (admin) and ``alice`` (viewer, limited to the
DAGs given as ``scope``). The server runs in its own process group and is stopped with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, workdir: Path, scope: dict[str, list[str]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "api-server.log"
        passwords = workdir / "passwords.json"
        passwords.write_text(json.dumps(PASSWORDS))
        self.env = {
            **os.environ,
            "AIRFLOW__CORE__AUTH_MANAGER": "carbon_testing.ui_auth.DagScopedSimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__BASE_URL": self.url,
            "CARBON_TEST_DAG_SCOPE": ";".join(f"{u}={','.join(d)}" for u, d in scope.items()),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._tokens: dict[str, str] = {}

    def start(self, timeout_s: float = 120.0) -> ApiServer:
        airflow = Path(sys.executable).with_name("airflow")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow api-server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v2/version", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"airflow api-server did not answer within {timeout_s:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def token(self, user: str) -> str:
        """A JWT for ``user`` from Airflow's own ``POST /auth/token``."""
        if user not in self._tokens:
            response = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=30)
            response.raise_for_status()
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]

    def get(self, path: str, user: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60, **kwargs)
