"""docker-compose.yml, Dockerfile, .dockerignore and .env.example: what a user checks before `docker compose up`.

The compose file is validated against the Compose Specification's JSON Schema (tests/data, a copy of ../shared/schemas), then
read the way a user would: services, queues, the GPU reservation, healthchecks, start order, secrets.
Where a Compose client is installed, `config -q` also runs with .env.example as the env file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from airflow_carbon.provider import CONFIG_OPTIONS

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec.json"
"""The Compose Specification's schema, a copy of ../shared/schemas/compose-spec.json (tests/data/README.md)."""
SHARED_SCHEMA_FILE = ROOT.parent / "shared" / "schemas" / "compose-spec.json"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}
ONE_SHOT_SERVICES = {"airflow-init"}
WORKERS = ("airflow-worker", "airflow-worker-gpu")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message} and $VAR (Compose interpolation).
VARIABLE_RE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
# Environment variables whose value is a secret, by name (a *_PASSWORDS_FILE path is not one).
SECRET_NAME_RE = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET_KEY|API_KEY)$")
# user:password@ in a URL (database, result backend, broker).
URL_CREDENTIALS_RE = re.compile(r"://[^/@\s:]*:(?P<password>\$\{[^}]*\}|[^@\s/]*)@")


# --- reading the files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    return yaml.safe_load(COMPOSE_FILE.read_text())  # safe_load resolves the << merge keys as Compose does


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def references(text: str) -> list[tuple[str, str | None, str]]:
    """Every interpolated variable as (name, operator, argument); "$$" is Compose's escaped dollar."""
    text = text.replace("$$", "")
    return [
        (m["name"] or m["bare"], m["op"], m["arg"] or "")
        for m in VARIABLE_RE.finditer(text)
    ]


def with_defaults(value: str) -> str:
    """The value Compose gives when no variable is set: ${VAR:-default} -> default."""
    return VARIABLE_RE.sub(lambda m: (m["arg"] or "") if m["op"] in (":-", "-") else m[0], value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the list form: ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_args(service: dict[str, Any]) -> list[str]:
    """The service's command as arguments of `airflow` (the image's entrypoint runs `airflow <command>`)."""
    command = service.get("command") or []
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    return args[1:] if args[:1] == ["airflow"] else args


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in names:
            return args[i + 1] if i + 1 < len(args) else None
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def worker_queues(service: dict[str, Any]) -> list[str]:
    """The queues `airflow celery worker` serves: --queues, else [operators] default_queue ("default")."""
    args = command_args(service)
    assert args[:2] == ["celery", "worker"], f"not a Celery worker command: {service.get('command')!r}"
    queues = option(args, "-q", "--queues")
    if queues is None:
        queues = environment(service).get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
    return [q.strip() for q in with_defaults(queues).split(",") if q.strip()]


def env_example() -> tuple[dict[str, str], set[str]]:
    """.env.example as (assigned NAME -> value, every NAME mentioned, commented-out ones included)."""
    assigned: dict[str, str] = {}
    mentioned: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line):
            mentioned.add(m[2])
            if not m[1]:
                assigned[m[2]] = m[3].strip()
    return assigned, mentioned


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())
    ]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (Docker's rules: the last matching
    pattern wins, "!" re-includes, a pattern that matches a parent folder matches what is inside it)."""

    def to_regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = to_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


# --- the Compose Specification -------------------------------------------------------------------------

# The validator for the draft named by the schema's "$schema" (this one says draft-07, over https, which
# jsonschema's own lookup does not recognise).
DRAFT_VALIDATORS = {
    "draft-04": jsonschema.Draft4Validator,
    "draft-06": jsonschema.Draft6Validator,
    "draft-07": jsonschema.Draft7Validator,
    "2019-09": jsonschema.Draft201909Validator,
    "2020-12": jsonschema.Draft202012Validator,
}


def test_compose_file_follows_the_compose_specification(compose):
    if SHARED_SCHEMA_FILE.is_file():  # the shared original, where this clone has it beside
        assert json.loads(SHARED_SCHEMA_FILE.read_text()) == json.loads(SCHEMA_FILE.read_text()), (
            f"{SCHEMA_FILE} differs from {SHARED_SCHEMA_FILE}: copy the shared schema again")
    schema = json.loads(SCHEMA_FILE.read_text())
    declared = schema.get("$schema", "")
    drafts = [cls for name, cls in DRAFT_VALIDATORS.items() if name in declared]
    assert drafts, f"{SCHEMA_FILE.name} declares $schema {declared!r}, which names no draft this test knows"
    validator_class = drafts[0]
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(
        f"  {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors
    )


def test_every_service_of_the_cluster_is_defined(services):
    missing = ({"postgres", "redis"} | AIRFLOW_SERVICES) - set(services)
    assert not missing, f"docker-compose.yml lacks the services {sorted(missing)}"
    image = services["postgres"].get("image", "")
    assert image.startswith("postgres:16"), f"postgres runs {image!r}, expected PostgreSQL 16"


# --- workers and queues --------------------------------------------------------------------------------


def test_gpu_worker_listens_only_on_the_gpu_queue(services):
    queues = worker_queues(services["airflow-worker-gpu"])
    assert queues == ["gpu"], f"airflow-worker-gpu serves the queues {queues}; it must serve 'gpu' alone"


def test_cpu_worker_does_not_listen_on_the_gpu_queue(services):
    queues = worker_queues(services["airflow-worker"])
    assert "gpu" not in queues, f"airflow-worker (CPU) serves {queues}: GPU tasks could land on a worker without GPUs"
    assert "default" in queues, f"airflow-worker serves {queues}, so tasks on Airflow's default queue would never run"


def test_gpu_worker_reserves_nvidia_gpus_counted_from_an_env_var(services):
    worker = services["airflow-worker-gpu"]
    devices = worker.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices") or []
    nvidia = [d for d in devices if d.get("driver") == "nvidia"]
    assert nvidia, f"airflow-worker-gpu reserves no NVIDIA device (deploy.resources.reservations.devices: {devices})"
    device = nvidia[0]
    assert "gpu" in device.get("capabilities", []), f"the NVIDIA reservation lacks capabilities [gpu]: {device}"
    count = str(device.get("count", ""))
    refs = references(count)
    assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-\d+)?\}", count) and refs, (
        f"the GPU count is {count!r}; expected it from an environment variable, e.g. ${{CARBON_GPU_COUNT:-1}}"
    )
    _, mentioned = env_example()
    assert refs[0][0] in mentioned, f"{refs[0][0]} (the GPU count) is not documented in .env.example"


def test_gpu_worker_exposes_nvml_and_only_its_reserved_gpus(services):
    env = environment(services["airflow-worker-gpu"])
    capabilities = env.get("NVIDIA_DRIVER_CAPABILITIES", "")
    assert "utility" in capabilities.split(",") or capabilities == "all", (
        f"NVIDIA_DRIVER_CAPABILITIES={capabilities!r}: without 'utility' the container gets no NVML, so "
        "airflow-carbon cannot read GPU energy"
    )
    assert "NVIDIA_VISIBLE_DEVICES" not in env, (
        "NVIDIA_VISIBLE_DEVICES is set on airflow-worker-gpu: Docker derives it from the device reservation, "
        "and a value such as 'all' would expose GPUs beyond the reserved count"
    )


def test_gpu_worker_runs_one_task_at_a_time_by_default(services):
    # A tracked task measures every GPU its worker sees: two tasks at once would count each other's energy.
    concurrency = option(command_args(services["airflow-worker-gpu"]), "-c", "--concurrency")
    assert concurrency is not None, "airflow-worker-gpu sets no --concurrency (Celery's default is 16 tasks at once)"
    assert with_defaults(concurrency) == "1", f"airflow-worker-gpu runs {with_defaults(concurrency)} tasks at once by default"


def test_carbon_gpu_queue_is_the_gpu_workers_queue(services):
    gpu_queue = worker_queues(services["airflow-worker-gpu"])[0]
    for name in sorted(AIRFLOW_SERVICES):
        value = environment(services[name]).get("AIRFLOW__CARBON__GPU_QUEUE")
        assert value == gpu_queue, (
            f"{name}: AIRFLOW__CARBON__GPU_QUEUE={value!r}, but airflow-worker-gpu serves {gpu_queue!r}: "
            "tracked tasks would wait on a queue no worker serves"
        )


def test_carbon_settings_are_known_options(services):
    for name in sorted(AIRFLOW_SERVICES):
        for key in environment(services[name]):
            if key.startswith("AIRFLOW__CARBON__"):
                assert key.removeprefix("AIRFLOW__CARBON__").lower() in CONFIG_OPTIONS, (
                    f"{name}: {key} is not an option of the [carbon] section ({sorted(CONFIG_OPTIONS)})"
                )


def test_executor_is_celery_with_redis_and_postgres(services):
    for name in sorted(AIRFLOW_SERVICES):
        env = environment(services[name])
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", f"{name} runs executor {env.get('AIRFLOW__CORE__EXECUTOR')!r}"
        assert env.get("AIRFLOW__CELERY__BROKER_URL", "").startswith("redis://"), f"{name}: the Celery broker is not Redis"
        assert env.get("AIRFLOW__CELERY__RESULT_BACKEND", "").startswith("db+postgresql://"), (
            f"{name}: the Celery result backend is not the PostgreSQL database"
        )
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false", f"{name} loads Airflow's example DAGs"


# --- health and start order ----------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in sorted(services.items()):
        if name in ONE_SHOT_SERVICES:
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and test not in (["NONE"], "NONE"), (
            f"{name} has no healthcheck: services that wait for it to be healthy could start too early"
        )


def test_services_start_in_order(services):
    for name in sorted(AIRFLOW_SERVICES):
        depends = services[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on is a list, so it waits for nothing to be ready"
        conditions = {dep: (spec or {}).get("condition") for dep, spec in depends.items()}
        for backend in ("postgres", "redis"):
            assert conditions.get(backend) == "service_healthy", (
                f"{name} does not wait for {backend} to be healthy (depends_on: {conditions})"
            )
        if name not in ONE_SHOT_SERVICES:
            assert conditions.get("airflow-init") == "service_completed_successfully", (
                f"{name} does not wait for airflow-init (the database migration) to complete successfully"
            )
    for name in WORKERS:
        condition = (services[name]["depends_on"].get("airflow-apiserver") or {}).get("condition")
        assert condition == "service_healthy", f"{name} does not wait for the API server its tasks report to"
    restart = services["airflow-init"].get("restart", "no")
    assert restart in ("no", "on-failure"), f"airflow-init is one-shot but has restart: {restart}"


# --- secrets -------------------------------------------------------------------------------------------


def test_no_secret_is_written_in_the_compose_file(services):
    problems = []
    for name, service in sorted(services.items()):
        for key, value in environment(service).items():
            if SECRET_NAME_RE.search(key):
                refs = references(value)
                if not re.fullmatch(r"\$\{[^}]*\}", value) or not refs:
                    problems.append(f"{name}: {key} is a literal; use ${{{key}:?...}} and put the value in .env")
                elif refs[0][1] in (":-", "-") and refs[0][2]:
                    problems.append(f"{name}: {key} has a default value {refs[0][2]!r} written in the file")
            if m := URL_CREDENTIALS_RE.search(value):
                password = m["password"]
                if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}", password):
                    problems.append(f"{name}: {key} holds a password that is not a required ${{...}} reference: {password!r}")
    assert not problems, "Secrets in docker-compose.yml:\n  " + "\n  ".join(problems)


def test_hf_token_reaches_the_workers_from_the_environment_only(services):
    for name in WORKERS:
        value = environment(services[name]).get("HF_TOKEN")
        assert value is not None and references(value) and references(value)[0][0] == "HF_TOKEN", (
            f"{name} does not pass HF_TOKEN through from .env (value: {value!r})"
        )


def test_env_example_lists_every_variable_the_compose_file_needs():
    assert ENV_EXAMPLE.is_file(), ".env.example is missing: users copy it to .env"
    assigned, mentioned = env_example()
    refs = references(COMPOSE_FILE.read_text())
    required = sorted({name for name, op, _ in refs if op not in (":-", "-")})
    missing = [name for name in required if not assigned.get(name)]
    assert not missing, f".env.example gives no value for the required variables {missing}"
    undocumented = sorted({name for name, _, _ in refs} - mentioned)
    assert not undocumented, f"docker-compose.yml reads {undocumented}, which .env.example does not mention"


def test_env_file_is_git_ignored_and_env_example_is_not():
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0
        example_ignored = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT).returncode == 0
    else:
        lines = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
        ignored, example_ignored = ".env" in lines, ".env.example" in lines
    assert ignored, ".env (the secrets) is not git-ignored: add a line '.env' to .gitignore"
    assert not example_ignored, ".env.example is git-ignored, so the template would never be committed"


# --- the image -----------------------------------------------------------------------------------------


def test_dockerfile_installs_the_package_from_constraints_txt():
    instructions = dockerfile_instructions()
    base = next((args for op, args in instructions if op == "FROM"), "")
    m = re.fullmatch(r"apache/airflow:(?P<airflow>[\d.]+)-python(?P<python>[\d.]+)", base.strip())
    assert m, f"the Dockerfile starts FROM {base!r}, not an official apache/airflow:<version>-python<version> image"
    pin = re.search(r"(?im)^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text())
    assert pin and pin[1] == m["airflow"], (
        f"the image is Airflow {m['airflow']} but constraints.txt pins apache-airflow=={pin[1] if pin else None}"
    )
    pip_runs = [(i, args) for i, (op, args) in enumerate(instructions) if op == "RUN" and "pip install" in args]
    assert pip_runs, "the Dockerfile runs no pip install"
    index, pip = pip_runs[0]
    assert re.search(r"(-c|--constraint)[ =]\S*constraints\.txt", pip), f"pip install does not use constraints.txt: {pip}"
    assert "[cluster]" in pip, f"pip install does not install the cluster extra: {pip}"
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in pip, (
        "pip install does not pin apache-airflow==${AIRFLOW_VERSION}, so it could change the image's Airflow"
    )
    users = [args.strip() for op, args in instructions[:index] if op == "USER"]
    assert not users or users[-1].split(":")[0] == "airflow", f"pip install runs as {users[-1]}, not as the airflow user"


def test_build_context_holds_the_package_and_no_secrets():
    for path in (".env", ".venv/bin/python", ".git/config", "build/lib/x.py"):
        assert dockerignored(path), f"{path} would be sent into the image build (.dockerignore)"
    for path in ("pyproject.toml", "constraints.txt", "README.md", "airflow_carbon/__init__.py", "airflow_carbon/core/data/grid_intensity.json"):
        assert not dockerignored(path), f"{path} is left out of the build context, but pip install needs it"


# --- a real Compose client -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_client() -> list[str]:
    """`docker compose` (v2) where it works, else `docker-compose` (v1, Debian's package)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    pytest.skip("no Compose client installed (Debian: apt-get install --no-install-recommends docker-compose)")


def run_config(client: list[str], env_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A bare environment: secrets exported in the developer's shell must not stand in for the env file.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    return subprocess.run(
        [*client, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_compose_config_accepts_the_env_example(compose_client, tmp_path):
    env_file = tmp_path / "env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    result = run_config(compose_client, env_file, tmp_path)
    assert result.returncode == 0, f"{' '.join(compose_client)} config -q failed:\n{result.stdout}{result.stderr}"


def test_compose_config_names_the_missing_secret(compose_client, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("")
    result = run_config(compose_client, env_file, tmp_path)
    assert result.returncode != 0, "compose accepted the file with no secrets set"
    assert "is not set: cp .env.example .env" in result.stderr, f"unclear error without .env:\n{result.stderr}"
