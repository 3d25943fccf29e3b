"""A real Airflow 3 Celery cluster on this machine, for tests (tests/test_cluster.py) and benchmarks
(bench/cluster.py).

``Cluster(dag_paths, dag_ids).start()`` gives, in a temporary directory:

- a fresh metadata database (unique name) on the PostgreSQL server at 127.0.0.1:5432 (trust auth, user
  ``postgres``), and Celery's broker on Redis at 127.0.0.1:6379, DB 11 (flushed). Where either server
  is not reachable, one is started from the installed server binaries (``/usr/lib/postgresql/*/bin``,
  ``redis-server``) in the temporary directory; where none is installed, start() fails naming what to
  install;
- a private AIRFLOW_HOME (``airflow db migrate``), SimpleAuthManager with user admin/admin, a JWT
  secret, CeleryExecutor, ``[carbon] gpu_queue = gpu``; a DAGs folder holding copies of ``dag_paths``;
- ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and two ``airflow celery worker``: one on
  queue ``default`` (host ``cpu-worker-1``), one on queue ``gpu`` (host ``gpu-worker-1``) with the
  simulated GPU library (carbon_testing.fake_nvml) on its library path. Each worker runs under
  ``unshare --uts`` with its own hostname, so ``socket.gethostname()`` differs; where unshare is not
  permitted, ``[core] hostname_callable`` reads the name from an environment variable instead
  (``distinct_hosts`` is then False: the records' ``host``, from socket.gethostname(), is this machine's).

Every process runs in its own session and logs to ``<tmp>/logs/<name>.log``; :meth:`Cluster.stop`
(also registered with atexit) ends each by process group (SIGTERM, then SIGKILL after a grace period),
drops the database and flushes the Redis DB. Environment: ``CARBON_CLUSTER_KEEP=1`` keeps the temporary
directory; ``CARBON_CLUSTER_OWN_SERVICES=1`` starts its own PostgreSQL and Redis even where servers are
reachable; ``CARBON_CLUSTER_NO_UNSHARE=1`` uses the hostname_callable fallback even where unshare works. Stdlib only at import time (``carbon_testing.cluster.hostname`` is imported by worker processes).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import fake_nvml
from ..ui_server import free_port
from .hostname import ENV_VAR as HOSTNAME_ENV_VAR

__all__ = ["CPU_HOST", "DEFAULT_QUEUE", "GPU_HOST", "GPU_QUEUE", "Cluster", "ClusterError", "HTTPError"]

VENV_BIN = Path(sys.executable).parent
AIRFLOW = VENV_BIN / "airflow"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11
GPU_HOST, CPU_HOST = "gpu-worker-1", "cpu-worker-1"
GPU_QUEUE, DEFAULT_QUEUE = "gpu", "default"
ADMIN = ("admin", "admin")
DEFAULT_GPU_CONFIG = "count=1; power=const:300"
"""The gpu worker's simulated GPU: one H200 drawing a constant 300 W (energy = 300 J per second)."""

STOP_GRACE_S = 15.0
START_TIMEOUT_S = 180.0


class ClusterError(RuntimeError):
    """The cluster could not start, or a process of it died; the message says why (and shows log tails)."""


class HTTPError(ClusterError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


@dataclass
class Process:
    name: str
    cmd: list[str]
    popen: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the leader's pid is the group id


def reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(text[-lines:])


def unshare_works() -> bool:
    """Whether this user may give a process a hostname of its own (a new UTS namespace)."""
    if shutil.which("unshare") is None:
        return False
    try:
        res = subprocess.run(
            ["unshare", "--uts", "sh", "-c", "hostname carbon-probe && hostname"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and res.stdout.strip() == "carbon-probe"


class Cluster:
    """A CeleryExecutor cluster serving ``dag_paths`` (files or folders copied into its DAGs folder).

    ``dag_ids``: DAGs start() waits for (parsed and visible in the REST API). ``gpu_config``: the
    simulated GPU of the gpu worker (carbon_testing.fake_nvml syntax). ``concurrency``: per worker.
    ``extra_env``: added to every process's environment.
    """

    def __init__(
        self,
        dag_paths: Iterable[Path],
        dag_ids: Iterable[str],
        *,
        gpu_config: str = DEFAULT_GPU_CONFIG,
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        own_services: bool = False,
        name: str = "airflow-carbon-cluster",
    ) -> None:
        self.dag_paths = [Path(p) for p in dag_paths]
        self.dag_ids = list(dag_ids)
        self.gpu_config = gpu_config
        self.concurrency = concurrency
        self.extra_env = dict(extra_env or {})
        self.own_services = own_services or os.environ.get("CARBON_CLUSTER_OWN_SERVICES") == "1"
        self.name = name
        self.tmp: Path | None = None
        self.procs: list[Process] = []
        self.env: dict[str, str] = {}
        self.port = 0
        self.url = ""
        self.token = ""
        self.db_name = ""
        self.pg: tuple[str, int] = (PG_HOST, PG_PORT)
        self.redis: tuple[str, int, int] = (REDIS_HOST, REDIS_PORT, REDIS_DB)
        self.distinct_hosts = False
        self.hostname_method = ""
        self.model_dir: Path | None = None
        self.timings: dict[str, float] = {}
        self._own_pg: tuple[Path, Path, list[str]] | None = None  # (bindir, datadir, runuser prefix)
        self._own_pg_dir: Path | None = None
        self._started = self._stopped = False
        self.failed = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Cluster:
        if self._started:
            return self
        self._started = True
        atexit.register(self.stop)
        t0 = time.monotonic()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        (self.tmp / "logs").mkdir()
        try:
            self._services()
            self.timings["services_s"] = time.monotonic() - t0
            self._prepare_home()
            t = time.monotonic()
            celery_check = self._check_celery_start()
            try:
                self._airflow_run(["db", "migrate"], "db-migrate", timeout_s=300)
            except BaseException:
                celery_check.kill()
                celery_check.wait()
                raise
            self._check_celery_finish(celery_check)
            self.timings["db_migrate_s"] = time.monotonic() - t
            t = time.monotonic()
            self._start_processes()
            self._wait_ready()
            self.timings["processes_ready_s"] = time.monotonic() - t
        except BaseException:
            self.failed = True
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """End every process by process group, drop the database, flush the Redis DB. Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        for proc in reversed(self.procs):
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:  # the leader gone or not: the rest of its group (task processes) too
            self._signal(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
            proc.log_file.close()
        self._drop_services()
        if self.tmp is not None and os.environ.get("CARBON_CLUSTER_KEEP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._own_pg_dir is not None and os.environ.get("CARBON_CLUSTER_KEEP") != "1":
            shutil.rmtree(self._own_pg_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _signal(proc: Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pgid, sig)

    # -- PostgreSQL and Redis -----------------------------------------------------------------------
    def _services(self) -> None:
        try:
            import psycopg2  # noqa: F401
            import redis
        except ImportError as exc:
            raise ClusterError(f"the cluster needs psycopg2 and redis ({exc}): pip install -e '.[cluster]'") from None
        if self.own_services or not reachable(PG_HOST, PG_PORT):
            self._start_own_postgres()
        if self.own_services or not reachable(REDIS_HOST, REDIS_PORT):
            self._start_own_redis()
        self.db_name = f"airflow_carbon_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self._pg_admin() as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db_name}"')
        import redis

        redis.Redis(host=self.redis[0], port=self.redis[1], db=self.redis[2]).flushdb()

    def _pg_admin(self) -> Any:
        import psycopg2

        host, port = self.pg
        try:
            conn = psycopg2.connect(host=host, port=port, user=PG_USER, dbname="postgres", connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise ClusterError(
                f"cannot connect to PostgreSQL at {host}:{port} as user {PG_USER!r} without a password ({exc}); "
                "the cluster needs trust authentication for local TCP connections (pg_hba.conf: host all all 127.0.0.1/32 trust)"
            ) from None
        conn.autocommit = True
        return _Closing(conn)

    def _start_own_postgres(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
        if not initdbs:
            raise ClusterError(
                f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} and no server is installed to start one: "
                "install it (apt-get install postgresql) or start a server there with trust authentication for user postgres"
            )
        bindir = Path(initdbs[-1]).parent
        prefix: list[str] = []
        # its own directory under /tmp, readable by the postgres user (initdb refuses to run as root)
        self._own_pg_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-pg-"))
        data = self._own_pg_dir / "data"
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError("initdb cannot run as root and there is no 'postgres' user: run as another user, or install postgresql (which creates it)") from None
            os.chown(self._own_pg_dir, pw.pw_uid, pw.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        log = self.tmp / "logs" / "postgres.log"
        res = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True,
        )
        if res.returncode != 0:
            raise ClusterError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        port = free_port()
        opts = f"-p {port} -k {data} -c listen_addresses={PG_HOST} -c fsync=off -c max_connections=200"
        pg_log = self._own_pg_dir / "server.log"
        res = subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(pg_log), "-o", opts, "-w", "-t", "60", "start"],
            capture_output=True, text=True, start_new_session=True,
        )
        if res.returncode != 0:
            raise ClusterError(f"pg_ctl start failed:\n{res.stdout}\n{res.stderr}\n{tail(pg_log)}")
        self._own_pg = (bindir, data, prefix)
        self.pg = (PG_HOST, port)
        log.write_text(f"own PostgreSQL {bindir} on port {port}, data {data}, log {pg_log}\n")

    def _start_own_redis(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ClusterError(
                f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} and redis-server is not installed to start one: "
                "install it (apt-get install redis-server) or start a server there"
            )
        port = free_port()
        data = self.tmp / "redis"
        data.mkdir()
        self._spawn("redis", [server, "--port", str(port), "--bind", REDIS_HOST, "--save", "", "--appendonly", "no", "--dir", str(data)], os.environ.copy())
        self.redis = (REDIS_HOST, port, 0)
        self._wait_for(lambda: reachable(REDIS_HOST, port), 30, "redis-server to listen")

    def _drop_services(self) -> None:
        if self.db_name:
            try:
                with self._pg_admin() as conn, conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except Exception as exc:  # never mask the test's own error
                print(f"cluster: could not drop database {self.db_name}: {exc}", file=sys.stderr)
        try:
            import redis

            redis.Redis(host=self.redis[0], port=self.redis[1], db=self.redis[2], socket_timeout=5).flushdb()
        except Exception:
            pass
        if self._own_pg is not None:
            bindir, data, prefix = self._own_pg
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)

    # -- Airflow ------------------------------------------------------------------------------------
    def _prepare_home(self) -> None:
        assert self.tmp is not None
        home, dags = self.tmp / "airflow", self.tmp / "dags"
        home.mkdir()
        dags.mkdir()
        for path in self.dag_paths:
            if path.is_dir():
                shutil.copytree(path, dags / path.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, dags / path.name)
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
        self.model_dir = self.tmp / "model"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pg_host, pg_port = self.pg
        r_host, r_port, r_db = self.redis
        db = f"postgres@{pg_host}:{pg_port}/{self.db_name}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CARBON_", "FAKE_NVML"))}
        self.env = {
            **base,
            "PATH": f"{VENV_BIN}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}",
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{r_host}:{r_port}/{r_db}",
            # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, which is not installed: name psycopg2
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
            # lean and quick on a small machine: one parsing process, short loops
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
            # a task's supervisor sometimes notices its process's exit only when its select() times out,
            # which is at most this (default 5 s): the worker slot then idles up to 5 s after the task ended
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # socket.gethostname(): no DNS round trip, and the name unshare set (see _start_processes)
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
            "AIRFLOW__CARBON__GPU_QUEUE": GPU_QUEUE,
            "CARBON_CLUSTER_DIR": str(self.tmp),  # scratch space shared by every process (one machine)
            "XDG_RUNTIME_DIR": str(self.tmp),  # the GPU-sharing registry of its workers' windows: the cluster's own
            "CARBON_DEMO_DIR": str(self.tmp / "demo"),
            "CARBON_DEMO_MODEL_DIR": str(self.model_dir),
            **self.extra_env,
        }

    def _check_celery_start(self) -> subprocess.Popen:
        """Import what a Celery worker imports, in the workers' environment (alongside db migrate)."""
        code = "import celery, airflow.providers.celery.executors.celery_executor"
        return subprocess.Popen([sys.executable, "-c", code], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.tmp)

    def _check_celery_finish(self, check: subprocess.Popen) -> None:
        out = check.communicate(timeout=120)[0].decode(errors="replace")
        if check.returncode == 0:
            return
        hint = ""
        if "cannot import name 'retry' from 'celery.backends.database'" in out:
            import importlib.metadata as md

            hint = (
                f"\ncelery {md.version('celery')} no longer has celery.backends.database.retry, which "
                f"apache-airflow-providers-celery {md.version('apache-airflow-providers-celery')} imports: "
                "install celery<5.7 (e.g. pip install 'celery==5.6.3'; pin it in constraints.txt)"
            )
        raise ClusterError(f"a Celery worker could not start: importing the CeleryExecutor failed:\n{out[-3000:]}{hint}")

    def _airflow_run(self, args: list[str], name: str, timeout_s: float) -> None:
        assert self.tmp is not None
        log = self.tmp / "logs" / f"{name}.log"
        with open(log, "wb") as out:
            try:
                res = subprocess.run([str(AIRFLOW), *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise ClusterError(f"airflow {' '.join(args)} ran past {timeout_s:.0f} s:\n{tail(log)}") from None
        if res.returncode != 0:
            raise ClusterError(f"airflow {' '.join(args)} failed ({res.returncode}):\n{tail(log, 60)}")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Process:
        assert self.tmp is not None
        log_path = self.tmp / "logs" / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - the process writes to it until stop() closes it
        popen = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.tmp, start_new_session=True)
        proc = Process(name, cmd, popen, log_path, log_file)
        self.procs.append(proc)
        return proc

    def gpu_env(self) -> dict[str, str]:
        """The simulated GPU for a process: FAKE_NVML_CONFIG, and its library first on LD_LIBRARY_PATH."""
        lib_dir = str(fake_nvml.build())

        def prepend(var: str) -> str:
            rest = [p for p in self.env.get(var, "").split(os.pathsep) if p and p != lib_dir]
            return os.pathsep.join([lib_dir, *rest])

        return {fake_nvml.ENV_VAR: self.gpu_config, "LD_LIBRARY_PATH": prepend("LD_LIBRARY_PATH"), "PATH": prepend("PATH")}

    def _worker(self, name: str, host: str, queue: str, env: dict[str, str]) -> None:
        cmd = [
            str(AIRFLOW), "celery", "worker", "--queues", queue, "--concurrency", str(self.concurrency),
            "--celery-hostname", f"{name}@{host}", "--skip-serve-logs", "--without-mingle", "--without-gossip",
        ]
        if self.distinct_hosts:
            cmd = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *cmd]
        else:
            env = {
                **env,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "carbon_testing.cluster.hostname.from_env",
                HOSTNAME_ENV_VAR: host,
            }
        self._spawn(name, cmd, env)

    def _start_processes(self) -> None:
        self.distinct_hosts = os.environ.get("CARBON_CLUSTER_NO_UNSHARE") != "1" and unshare_works()
        self.hostname_method = (
            "unshare --uts (each worker has its own hostname)" if self.distinct_hosts
            else "[core] hostname_callable = carbon_testing.cluster.hostname.from_env (unshare not permitted: one hostname for all)"
        )
        self._spawn("api-server", [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"], self.env)
        self._spawn("scheduler", [str(AIRFLOW), "scheduler"], self.env)
        self._spawn("dag-processor", [str(AIRFLOW), "dag-processor"], self.env)
        self._spawn("triggerer", [str(AIRFLOW), "triggerer"], self.env)  # deferred tasks wait here, not in a worker slot
        self._worker("worker-default", CPU_HOST, DEFAULT_QUEUE, self.env)
        self._worker("worker-gpu", GPU_HOST, GPU_QUEUE, {**self.env, **self.gpu_env()})

    def _wait_for(self, ready: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                value = ready()
            except (OSError, ClusterError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.log_tails()}")
            time.sleep(interval_s)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
        self._wait_for(lambda: self.request("GET", "/api/v2/monitor/health", auth=False)[0] == 200, left(), "the api-server")
        self.token = self._login()
        for proc in self.procs:
            if proc.name.startswith("worker-"):
                self._wait_for(lambda p=proc: b" ready." in p.log_path.read_bytes(), left(), f"celery {proc.name} to be ready")
        for dag_id in self.dag_ids:
            self._wait_for(lambda d=dag_id: self._dag_visible(d), left(), f"DAG {dag_id} to be parsed")

    def _login(self) -> str:
        status, body = self.request("POST", "/auth/token", {"username": ADMIN[0], "password": ADMIN[1]}, auth=False)
        if status not in (200, 201):
            raise ClusterError(f"POST /auth/token -> HTTP {status}: {body}")
        return body["access_token"]

    def _dag_visible(self, dag_id: str) -> bool:
        errors = self.api("GET", "/api/v2/importErrors")
        if errors.get("import_errors"):
            raise ClusterError(f"DAG import errors: {json.dumps(errors['import_errors'], indent=1)[:4000]}")
        return self.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200

    def check_alive(self) -> None:
        """Raise ClusterError, with its log, when a cluster process has exited."""
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None and not self._stopped:
                self.failed = True
                raise ClusterError(f"cluster process {proc.name} exited with {code}:\n{tail(proc.log_path, 60)}")

    # -- REST API -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout_s: float = 30) -> tuple[int, Any]:
        """(status, parsed JSON or text) of one call to the api-server."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise ClusterError(f"{method} {self.url + path}: {exc}") from None
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a call that must succeed (2xx), else HTTPError."""
        status, data = self.request(method, path, body)
        if not 200 <= status < 300:
            raise HTTPError(method, self.url + path, status, data if isinstance(data, str) else json.dumps(data))
        return data

    @staticmethod
    def q(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause ``dag_id``, start a run of it now; returns the run id."""
        self.api("PATCH", f"/api/v2/dags/{self.q(dag_id)}", {"is_paused": False})
        run = self.api("POST", f"/api/v2/dags/{self.q(dag_id)}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}")

    def wait(
        self,
        dag_id: str,
        run_id: str,
        timeout_s: float = 420,
        interval_s: float = 1.0,
        on_poll: Callable[[], None] | None = None,
        poll_s: float = 0.05,
    ) -> dict[str, Any]:
        """Poll the run's state every ``interval_s`` until it is finished (success or failed); return it.
        ``on_poll``, if given, is called every ``poll_s`` meanwhile. On timeout: ClusterError with the
        task instances' states, their logs and every process's log tail."""
        deadline = time.monotonic() + timeout_s
        next_state = 0.0
        while True:
            if on_poll is not None:
                on_poll()
            if time.monotonic() >= next_state:
                self.check_alive()
                run = self.dag_run(dag_id, run_id)
                if run["state"] in ("success", "failed"):
                    return run
                next_state = time.monotonic() + interval_s
            if time.monotonic() > deadline:
                self.failed = True
                raise ClusterError(f"DAG run {dag_id} {run_id} still {run['state']} after {timeout_s:.0f} s\n{self.diagnostics(dag_id, run_id)}")
            time.sleep(interval_s if on_poll is None else poll_s)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/taskInstances?limit=1000")["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of one task instance (the current one included), by try_number."""
        path = f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/taskInstances/{self.q(task_id)}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return sorted(self.api("GET", path)["task_instances"], key=lambda t: t["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """An XCom's value, or None where there is none."""
        path = f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/taskInstances/{self.q(task_id)}/xcomEntries/{self.q(key)}?map_index={map_index}"
        status, data = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise HTTPError("GET", self.url + path, status, str(data))
        value = data["value"]
        return json.loads(value) if isinstance(value, str) else value

    def xcom_entries(self, dag_id: str, run_id: str, key: str) -> list[dict[str, Any]]:
        """The run's XComs named ``key`` (without values: task_id, map_index, timestamp)."""
        path = f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/taskInstances/~/xcomEntries?xcom_key={self.q(key)}&limit=1000"
        return self.api("GET", path)["xcom_entries"]

    def ui_available(self) -> bool:
        """Whether airflow-carbon's UI app (mounted at /carbon) is served."""
        plugins = self.api("GET", "/api/v2/plugins?limit=100").get("plugins", [])
        return any((app.get("url_prefix") or "").rstrip("/") == "/carbon" for p in plugins for app in p.get("fastapi_apps") or [])

    # -- diagnostics --------------------------------------------------------------------------------
    def log_tails(self, lines: int = 40) -> str:
        if self.tmp is None:
            return ""
        parts = []
        for path in sorted((self.tmp / "logs").glob("*.log")):
            parts.append(f"----- {path.name} (last {lines} lines) -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def task_logs(self, dag_id: str, run_id: str, lines: int = 40) -> str:
        """Tails of the task log files of one run (every try)."""
        if self.tmp is None:
            return ""
        folder = self.tmp / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = []
        for path in sorted(folder.rglob("*.log")):
            parts.append(f"----- task log {path.relative_to(folder)} -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def diagnostics(self, dag_id: str, run_id: str) -> str:
        try:
            tis = self.task_instances(dag_id, run_id)
            states = "\n".join(f"  {t['task_id']}[{t['map_index']}] try {t['try_number']}: {t['state']} queue={t['queue']} host={t['hostname']}" for t in tis)
        except ClusterError as exc:
            states = f"  (could not list task instances: {exc})"
        return f"task instances:\n{states}\n{self.task_logs(dag_id, run_id)}\n{self.log_tails()}"


class _Closing:
    """``with`` support for a psycopg2 connection that closes it (psycopg2's own only ends a transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
