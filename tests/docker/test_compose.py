"""Static checks of the Docker deployment in docker/: no Docker engine, no services.

compose.yaml is read with the values of .env.example, as `docker compose --env-file` would
interpolate it, and cross-checked with the code (every setting the code reads reaches the
containers that run it), docker/dagster.yaml (validated by Dagster itself), docker/workspace.yaml,
the Dockerfile, the PostgreSQL init script and the README section.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tests.docker.compose_schema import COMPOSE_SCHEMA

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
INIT_SCRIPT = DOCKER / "postgres" / "init.sh"
README_SECTION = DOCKER.parent / "README.md"  # its "Running with Docker" section

# Settings the code reads (agreed for the project). More are discovered in the code itself.
KNOWN_CODE_VARS = {
    "OLIST_PG_HOST",
    "OLIST_PG_PORT",
    "OLIST_PG_DATABASE",
    "OLIST_INGEST_USER",
    "OLIST_INGEST_PASSWORD",
    "OLIST_DBT_USER",
    "OLIST_DBT_PASSWORD",
    "OLIST_DAGSTER_PG_DATABASE",
    "OLIST_DAGSTER_PG_USER",
    "OLIST_DAGSTER_PG_PASSWORD",
    "OLIST_KAFKA_BOOTSTRAP",
    "OLIST_KAFKA_TOPIC",
    "OLIST_KAFKA_GROUP",
    "OLIST_KAFKA_PARTITIONS",
    "DAGSTER_HOME",
}
# Read by the local stack (`olist stack ...`) only, never inside a container.
LOCAL_STACK_ONLY = {
    "OLIST_PG_ADMIN_USER": "superuser of the local cluster; the postgres image uses POSTGRES_*",
    "OLIST_PG_ADMIN_PASSWORD": "same",
    "OLIST_KAFKA_PORT": "port of the local broker; containers get OLIST_KAFKA_BOOTSTRAP",
    "OLIST_KAFKA_CONTROLLER_PORT": "port of the local controller",
    "OLIST_KAFKA_VERSION": "version of the local Kafka jars; compose pins the image",
    "OLIST_KAFKA_HEAP": "heap of the local broker; compose sets KAFKA_HEAP_OPTS",
    "OLIST_STACK_DIR": "data folder of the local stack",
    "OLIST_PG_OS_USER": "OS user that runs the local PostgreSQL",
}
# Optional overrides: the containers get the parts instead.
OPTIONAL_OVERRIDES = {
    "OLIST_PG_DSN": "explicit ingest DSN; compose passes host, user, ... instead",
    "OLIST_SCHEMA_PREFIX": "isolates tests' dbt schemas; unset in a deployment",
}
# Python code that only the local stack runs.
LOCAL_STACK_CODE = REPO / "kafka_io" / "stack"
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}
PLACEHOLDER = "change-me"


# --- Compose interpolation ----------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(KeyError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's `$$`, `$VAR`, `${VAR}`, `${VAR[:]-default}`, `${VAR[:]?error}`, `${VAR[:]+alt}`.

    Stricter than Compose for a plain `${VAR}` that is unset: an error, not an empty string.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        empty_means_unset = op is not None and op.startswith(":")
        is_set = value is not None and not (empty_means_unset and value == "")
        if op in (":-", "-"):
            return value if is_set else arg
        if op in (":+", "+"):
            return arg if is_set else ""
        if not is_set:
            raise MissingVariableError(f"{name} is not set" + (f" ({arg})" if arg else ""))
        return value

    return _INTERPOLATION.sub(substitute, text)


def interpolations(text: str) -> Iterator[tuple[str, str | None]]:
    """(variable, operator) of each interpolation in text."""
    for match in _INTERPOLATION.finditer(text):
        if not match["escaped"]:
            yield match["braced"] or match["named"], match["op"]


def map_strings(node: Any, fn: Callable[[str], Any]) -> Any:
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, dict):
        return {key: map_strings(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [map_strings(value, fn) for value in node]
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


# --- Loaders --------------------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"line {number} is not KEY=VALUE: {line!r}")
        values[key.strip()] = value.strip()
    return values


@cache
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())


@cache
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def compose() -> dict[str, Any]:
    """compose.yaml as Compose sees it with `--env-file .env.example`."""
    return map_strings(raw_compose(), lambda text: interpolate(text, env_example()))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items() if value is not None}


def command(service: str) -> list[str]:
    cmd = services()[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def option(argv: list[str], *names: str) -> str:
    """Value of the first of `names` in argv (`-p 4000` or `--port=4000`)."""
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    raise AssertionError(f"none of {names} in {argv}")


def built_images() -> set[str]:
    return {svc["image"] for svc in services().values() if "build" in svc and "image" in svc}


def app_services() -> list[str]:
    """Services that run the project's image (and so its code)."""
    return [
        name
        for name, svc in services().items()
        if "build" in svc or svc.get("image") in built_images()
    ]


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    image, _, digest = image.partition("@")
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None, digest or None
    return repository, tag, digest or None


def is_pinned(image: str) -> bool:
    _, tag, digest = split_image(image)
    return bool(digest) or (tag is not None and tag != "latest")


_PORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]+\]|[^:\[\]]+):)??(?:(?P<host>\d+(?:-\d+)?):)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp))?$"
)


def parse_port(port: Any) -> tuple[str | None, str | None, str]:
    """(host_ip, published, target) of a short- or long-syntax port."""
    if isinstance(port, dict):
        published = port.get("published")
        return (
            port.get("host_ip"),
            None if published is None else str(published),
            str(port["target"]),
        )
    match = _PORT.match(str(port))
    if not match:
        raise AssertionError(f"unparseable port {port!r}")
    return match["ip"], match["host"], match["target"]


def parse_volume(volume: Any) -> tuple[str | None, str]:
    """(source, target) of a short- or long-syntax volume."""
    if isinstance(volume, dict):
        return volume.get("source"), volume["target"]
    parts = str(volume).split(":")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def is_bind_source(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def mounts(service: str) -> dict[str, str]:
    """Container path -> source for a service's volumes."""
    result = {}
    for volume in services()[service].get("volumes", []):
        source, target = parse_volume(volume)
        result[target] = source
    return result


def volume_holding(service: str, path: str) -> str | None:
    """The named volume or bind source that holds `path` in `service`, if any."""
    for target, source in mounts(service).items():
        if PurePosixPath(path).is_relative_to(target):
            return source
    return None


def kafka_listeners(variable: str) -> dict[str, tuple[str, int]]:
    """Listener name -> (host, port) from KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS."""
    result = {}
    for item in environment("kafka")[variable].split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


# --- The Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                if sep:
                    env[key] = value
    return env


# --- Discovering the settings the code reads ---------------------------------------------------


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _first_str_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _field_alias(value: ast.expr | None) -> str | None:
    """The environment name given by `Field(validation_alias=...)` / `Field(alias=...)`."""
    if not (isinstance(value, ast.Call) and _dotted(value.func).split(".")[-1] == "Field"):
        return None
    for keyword in value.keywords:
        if keyword.arg in ("validation_alias", "alias"):
            alias = keyword.value
            if isinstance(alias, ast.Constant) and isinstance(alias.value, str):
                return alias.value
            if isinstance(alias, ast.Call) and _dotted(alias.func).endswith("AliasChoices"):
                return _first_str_arg(alias)
    return None


def _env_prefix(cls: ast.ClassDef) -> str | None:
    for stmt in cls.body:
        target = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        if isinstance(target, ast.Name) and target.id == "model_config":
            if isinstance(value, ast.Call):
                for keyword in value.keywords:
                    if keyword.arg == "env_prefix" and isinstance(keyword.value, ast.Constant):
                        return str(keyword.value.value)
            if isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "env_prefix":
                        return str(getattr(item, "value", ""))
        if isinstance(stmt, ast.ClassDef) and stmt.name == "Config":
            for inner in stmt.body:
                if (
                    isinstance(inner, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "env_prefix" for t in inner.targets)
                    and isinstance(inner.value, ast.Constant)
                ):
                    return str(inner.value.value)
    return None


def settings_env_names(tree: ast.Module) -> set[str]:
    """Environment names of pydantic-settings fields (env_prefix + field, or the alias)."""
    prefixes: dict[str, str] = {}  # settings classes of this module -> their env_prefix
    names = set()
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        bases = [_dotted(base).split(".")[-1] for base in cls.bases]
        parents = [base for base in bases if base == "BaseSettings" or base in prefixes]
        if not parents:
            continue
        inherited = next((prefixes[base] for base in parents if base in prefixes), "")
        prefix = _env_prefix(cls)
        prefixes[cls.name] = inherited if prefix is None else prefix
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            field = stmt.target.id
            if (
                field.startswith("_")
                or field == "model_config"
                or "ClassVar" in ast.unparse(stmt.annotation)
            ):
                continue
            names.add((_field_alias(stmt.value) or prefixes[cls.name] + field).upper())
    return names


def env_names_read_directly(tree: ast.Module) -> set[str]:
    """Names passed to os.environ[...] / os.environ.get / os.getenv / dagster EnvVar(...)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _dotted(node.value).endswith("environ"):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            reads = (
                func.endswith("getenv")
                or func.endswith(("environ.get", "environ.pop", "environ.setdefault"))
                or func.split(".")[-1] == "EnvVar"
                or re.search(r"(^|\.)EnvVar\.(int|bool|float|str)$", func) is not None
            )
            if reads and (name := _first_str_arg(node)):
                names.add(name)
    return names


_DBT_ENV_VAR = re.compile(r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")


def discover_code_env_vars(repo: Path) -> set[str]:
    """OLIST_* variables read by kafka_io/, olist_assets/ (Python) and dbt/ (env_var())."""
    names: set[str] = set()
    for package in ("kafka_io", "olist_assets"):
        for path in sorted((repo / package).rglob("*.py")):
            if (repo / package / "stack") in path.parents and package == "kafka_io":
                continue  # the local stack's own code
            tree = ast.parse(path.read_text(), filename=str(path))
            names |= settings_env_names(tree) | env_names_read_directly(tree)
    dbt_dir = repo / "dbt"
    skip = {dbt_dir / "target", dbt_dir / "dbt_packages", dbt_dir / "logs"}
    for path in sorted(dbt_dir.rglob("*")) if dbt_dir.is_dir() else []:
        if path.suffix in (".yml", ".yaml", ".sql") and not skip & set(path.parents):
            names |= set(_DBT_ENV_VAR.findall(path.read_text()))
    return {name for name in names if name.startswith("OLIST_")}


def required_code_vars() -> set[str]:
    discovered = discover_code_env_vars(REPO)
    return (KNOWN_CODE_VARS | discovered) - set(LOCAL_STACK_ONLY) - set(OPTIONAL_OVERRIDES)


# =================================================================================================
# Tests of the helpers: each check above must be able to fail.
# =================================================================================================


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|$$SET|$SET", env) == (
        "v|d||d|$SET|v"
    )
    assert interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    with pytest.raises(MissingVariableError, match="set it"):
        interpolate("${EMPTY:?set it}", env)
    with pytest.raises(MissingVariableError):
        interpolate("${UNSET}", env)
    assert list(interpolations("$$X ${A:-b} $C")) == [("A", ":-"), ("C", None)]


def test_port_and_image_parsers() -> None:
    assert parse_port("127.0.0.1:3000:3000") == ("127.0.0.1", "3000", "3000")
    assert parse_port("[::1]:5432:5432/tcp") == ("[::1]", "5432", "5432")
    assert parse_port("8080:80") == (None, "8080", "80")
    assert parse_port("4000") == (None, None, "4000")
    assert is_pinned("postgres:16") and is_pinned("ghcr.io/a/b:1.2@sha256:ab")
    assert not is_pinned("postgres") and not is_pinned("postgres:latest")
    assert not is_pinned("registry:5000/team/app")


def test_code_setting_discovery_finds_what_code_reads(tmp_path: Path) -> None:
    (tmp_path / "kafka_io").mkdir()
    (tmp_path / "kafka_io" / "settings.py").write_text(
        "import os\n"
        "from dagster import EnvVar\n"
        "from pydantic import AliasChoices, Field\n"
        "from pydantic_settings import BaseSettings, SettingsConfigDict\n"
        "class S(BaseSettings):\n"
        "    model_config = SettingsConfigDict(env_prefix='OLIST_')\n"
        "    pg_host: str = 'x'\n"
        "    dsn: str | None = Field(default=None, validation_alias='OLIST_PG_DSN')\n"
        "    other: str = Field('', validation_alias=AliasChoices('OLIST_OTHER', 'X'))\n"
        "    _private: int = 0\n"
        "class More(S):\n"
        "    extra_flag: bool = False\n"
        "def f():\n"
        "    os.environ['OLIST_A'], os.getenv('OLIST_B'), os.environ.get('OLIST_C')\n"
        "    EnvVar('OLIST_D'), EnvVar.int('OLIST_E')\n"
        "    print('OLIST_PRINTED_NOT_READ=1')\n"
    )
    (tmp_path / "kafka_io" / "stack").mkdir()
    (tmp_path / "kafka_io" / "stack" / "x.py").write_text("import os\nos.getenv('OLIST_LOCAL')\n")
    (tmp_path / "dbt").mkdir()
    (tmp_path / "dbt" / "profiles.yml").write_text("host: \"{{ env_var('OLIST_F', 'h') }}\"\n")
    assert discover_code_env_vars(tmp_path) == {
        "OLIST_PG_HOST",
        "OLIST_PG_DSN",
        "OLIST_OTHER",
        "OLIST_EXTRA_FLAG",
        "OLIST_A",
        "OLIST_B",
        "OLIST_C",
        "OLIST_D",
        "OLIST_E",
        "OLIST_F",
    }


def test_discovery_sees_the_projects_settings() -> None:
    settings = REPO / "kafka_io" / "settings.py"
    if not settings.exists():
        pytest.skip("kafka_io/settings.py not written yet")
    found = discover_code_env_vars(REPO)
    assert {"OLIST_PG_HOST", "OLIST_INGEST_PASSWORD", "OLIST_KAFKA_BOOTSTRAP"} <= found, found


def test_schema_rejects_typos_and_bad_values() -> None:
    validator = jsonschema.Draft202012Validator(COMPOSE_SCHEMA)
    good = {"services": {"a": {"image": "x:1", "restart": "no"}}}
    assert validator.is_valid(good)
    for bad in (
        {"services": {"a": {"image": "x:1", "enviroment": {}}}},
        {"services": {"a": {"image": "x:1", "restart": False}}},
        {"services": {"a": {"depends_on": {"b": {"condition": "healthy"}}}}},
        {"services": {"a": {"healthcheck": {"test": ["CMD"], "interval": "10"}}}},
        {"services": {}, "volume": {}},
    ):
        assert not validator.is_valid(bad), bad


# =================================================================================================
# compose.yaml
# =================================================================================================


def test_compose_file_is_valid_against_the_compose_schema() -> None:
    validator = jsonschema.Draft202012Validator(COMPOSE_SCHEMA)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def test_every_service_uses_a_pinned_image_or_a_build_from_the_repo() -> None:
    assert built_images(), "no service builds the project image"
    for name, svc in services().items():
        if "build" in svc:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            context = (DOCKER / build["context"]).resolve()
            # The Dockerfile copies requirements.lock and the package from the repo root.
            assert context == REPO, f"{name}: build context {context} is not the repo root"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
            assert is_pinned(svc["image"]), f"{name}: give the built image a non-latest tag"
        else:
            image = svc.get("image")
            assert image, f"{name}: neither image nor build"
            if image in built_images():
                # Built locally by another service: pulling it from a registry would fail
                # or, worse, fetch somebody else's image.
                assert svc.get("pull_policy") == "never", f"{name}: {image} must not be pulled"
            else:
                assert is_pinned(image), f"{name}: image {image!r} is not pinned to a tag"


def test_dockerfile_base_images_are_pinned() -> None:
    stages, images = set(), []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            parts = args.split()
            images.append(parts[0])
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
        elif (
            keyword == "COPY"
            and (match := re.search(r"--from=(\S+)", args))
            and match[1] not in stages
        ):
            images.append(match[1])
    assert images
    unpinned = [image for image in images if image not in stages and not is_pinned(image)]
    assert not unpinned, unpinned


def test_services_running_project_code_get_every_setting_it_reads() -> None:
    needed = required_code_vars()
    apps = app_services()
    assert {"code-server", "webserver", "daemon", "replay"} <= set(apps), apps
    missing = {
        name: sorted(needed - environment(name).keys())
        for name in apps
        if needed - environment(name).keys()
    }
    assert not missing, (
        f"settings the code reads but the containers do not get: {missing} (add them to "
        "x-olist-env in docker/compose.yaml, or to LOCAL_STACK_ONLY here if only "
        "`olist stack` reads them)"
    )


def test_in_network_addresses_point_at_the_services() -> None:
    advertised = kafka_listeners("KAFKA_ADVERTISED_LISTENERS")
    listening = kafka_listeners("KAFKA_LISTENERS")
    image_home = dockerfile_env()["DAGSTER_HOME"]
    for name in app_services():
        env = environment(name)
        assert env["OLIST_PG_HOST"] == "postgres" and "postgres" in services(), name
        assert env["OLIST_PG_PORT"] == "5432", f"{name}: postgres listens on 5432 in-network"
        host, _, port = env["OLIST_KAFKA_BOOTSTRAP"].rpartition(":")
        assert host in services(), f"{name}: bootstrap host {host!r} is not a service"
        # Clients reconnect to the advertised address: it must be the in-network one.
        listener = next((n for n, hp in advertised.items() if hp == (host, int(port))), None)
        assert listener, f"{name}: {host}:{port} is not an advertised Kafka listener"
        assert listening[listener][1] == int(port), f"{listener} listens on another port"
        assert env["DAGSTER_HOME"] == image_home, f"{name}: DAGSTER_HOME differs from the image"


def test_database_names_and_passwords_match_between_postgres_and_the_code() -> None:
    provisioned = {k: v for k, v in environment("postgres").items() if k.startswith("OLIST_")}
    assert {"OLIST_INGEST_PASSWORD", "OLIST_DBT_PASSWORD", "OLIST_DAGSTER_PG_PASSWORD"} <= set(
        provisioned
    )
    for name in app_services():
        env = environment(name)
        differing = {k for k, v in provisioned.items() if env.get(k) != v}
        assert not differing, f"{name} and postgres disagree on {sorted(differing)}"


def test_published_ports_are_loopback_only_and_unique() -> None:
    seen: dict[str, str] = {}  # host port -> service (every binding is loopback)
    for name, svc in services().items():
        for port in svc.get("ports", []):
            host_ip, published, _ = parse_port(port)
            assert published, f"{name}: {port!r} publishes a random port on every interface"
            assert host_ip in LOOPBACK, f"{name}: {port!r} is not bound to 127.0.0.1"
            assert published not in seen, f"{name} and {seen.get(published)} both use {published}"
            seen[published] = name
    ui_port = option(command("webserver"), "-p", "--port")
    targets = [parse_port(port)[2] for port in services()["webserver"].get("ports", [])]
    assert ui_port in targets, f"the webserver listens on {ui_port} but publishes {targets}"


def test_kafka_is_a_single_node_kraft_broker_with_a_persistent_log() -> None:
    env = environment("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env.get("CLUSTER_ID"), "KRaft needs a fixed cluster id"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node, _, address = voters[0].partition("@")
    assert node == env["KAFKA_NODE_ID"]
    listening = kafka_listeners("KAFKA_LISTENERS")
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voter_host, _, voter_port = address.rpartition(":")
    assert voter_host in {"kafka", services()["kafka"].get("hostname")}
    assert int(voter_port) == listening[controller][1]
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listening
    # The image's default log.dirs is under /tmp: it must be set, and on a named volume.
    log_dir = env["KAFKA_LOG_DIRS"]
    source = volume_holding("kafka", log_dir)
    assert source and not is_bind_source(source), f"{log_dir} is not on a named volume"


def test_kafka_host_listener_matches_its_published_port() -> None:
    advertised = kafka_listeners("KAFKA_ADVERTISED_LISTENERS")
    listening = kafka_listeners("KAFKA_LISTENERS")
    published = {
        int(target): (host_ip, int(host_port))
        for host_ip, host_port, target in map(parse_port, services()["kafka"].get("ports", []))
    }
    host_listeners = [n for n, (host, _) in advertised.items() if host in LOOPBACK]
    assert host_listeners, "no listener for clients on the host"
    for listener in host_listeners:
        host, port = advertised[listener]
        target = listening[listener][1]
        assert target in published, f"{listener} (container port {target}) is not published"
        assert published[target][1] == port, (
            f"{listener} advertises {host}:{port} but is published on {published[target]}"
        )


def test_volumes_are_declared_used_and_hold_the_data() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source, target = parse_volume(volume)
            assert source, f"{name}: anonymous volume at {target} loses its data"
            if is_bind_source(source):
                assert (DOCKER / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {sorted(declared - used)}"
    pg_data = volume_holding("postgres", "/var/lib/postgresql/data")
    assert pg_data and not is_bind_source(pg_data), "postgres data is not on a named volume"


def test_depends_on_waits_for_healthchecked_services() -> None:
    for name, svc in services().items():
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long depends_on syntax"
        for target, spec in depends.items():
            assert target in services(), f"{name} depends on unknown service {target}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {target}"
            check = services()[target].get("healthcheck") or {}
            test = check.get("test")
            assert test and not check.get("disable"), f"{target} has no healthcheck"
            assert (test if isinstance(test, str) else test[0]) != "NONE", target
            assert not (services()[target].get("profiles") and not svc.get("profiles")), (
                f"{name} starts by default but depends on {target}, which is behind a profile"
            )
    expected = {
        "code-server": {"postgres", "kafka"},
        "webserver": {"postgres", "code-server"},
        "daemon": {"postgres", "code-server"},
        "replay": {"kafka"},
    }
    for name, targets in expected.items():
        assert targets <= set(services()[name].get("depends_on", {})), name


def test_healthchecks_probe_the_port_each_service_serves() -> None:
    grpc_port = option(command("code-server"), "-p", "--port")
    check = services()["code-server"]["healthcheck"]["test"]
    assert "grpc-health-check" in check and option(check, "-p", "--port") == grpc_port
    ui_port = option(command("webserver"), "-p", "--port")
    ui_check = " ".join(services()["webserver"]["healthcheck"]["test"])
    assert f":{ui_port}/" in ui_check, ui_check
    kafka_check = " ".join(services()["kafka"]["healthcheck"]["test"])
    bootstrap = re.search(r"--bootstrap-server\s+(\S+)", kafka_check)
    assert bootstrap, kafka_check
    port = int(bootstrap[1].rpartition(":")[2])
    assert port in {p for _, p in kafka_listeners("KAFKA_LISTENERS").values()}


def test_env_example_defines_exactly_the_variables_compose_reads() -> None:
    referenced = {name for text in strings(raw_compose()) for name, _ in interpolations(text)}
    defined = set(env_example())
    assert not referenced - defined, f"missing from .env.example: {sorted(referenced - defined)}"
    assert not defined - referenced, f"unused in compose.yaml: {sorted(defined - referenced)}"


def test_secrets_are_required_from_env_and_only_placeholders_are_committed() -> None:
    secret = re.compile(r"PASSWORD|SECRET|TOKEN")
    for text in strings(raw_compose()):
        for name, op in interpolations(text):
            if secret.search(name):
                assert op == ":?", f"${{{name}}} must be required (:?), never defaulted"
    for name, svc in raw_compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if secret.search(key):
                assert "${" in str(value), f"{name}: {key} is a literal in compose.yaml"
    for key, value in env_example().items():
        if secret.search(key):
            assert value == PLACEHOLDER, f".env.example: {key} must be {PLACEHOLDER!r}"
    init_sql = INIT_SCRIPT.read_text()
    assert not re.search(r"password\s+'", init_sql, re.IGNORECASE), "literal password in init.sh"


def test_env_files_stay_out_of_git_and_the_image() -> None:
    gitignore = (REPO / ".gitignore").read_text().split()
    assert {".env", "/.env"} & set(gitignore), ".env is not git-ignored"
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    required = {".env", ".venv", ".stack", "dbt/target", ".git"}
    assert required <= ignored, f"not in {DOCKERIGNORE.name}: {sorted(required - ignored)}"


# =================================================================================================
# Dagster: docker/dagster.yaml and docker/workspace.yaml
# =================================================================================================


def test_workspace_points_at_the_code_server() -> None:
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    entries = workspace["load_from"]
    assert len(entries) == 1 and set(entries[0]) == {"grpc_server"}, entries
    grpc = entries[0]["grpc_server"]
    argv = command(grpc["host"])  # KeyError: the host is not a service
    assert argv[:3] == ["dagster", "code-server", "start"], argv
    assert str(grpc["port"]) == option(argv, "-p", "--port")
    assert option(argv, "-h", "--host") == "0.0.0.0", "the gRPC server must accept other hosts"
    home = dockerfile_env()["DAGSTER_HOME"]
    for name in ("webserver", "daemon"):
        assert option(command(name), "-w", "--workspace") == f"{home}/workspace.yaml", name


def test_code_server_serves_the_project_code_location() -> None:
    argv = command("code-server")
    cmd = next(json.loads(args) for keyword, args in dockerfile_instructions() if keyword == "CMD")
    assert cmd == argv, "the Dockerfile CMD and the compose command have drifted apart"
    module = option(argv, "-m", "--module-name")
    local_workspace = REPO / "workspace.yaml"
    if local_workspace.exists():
        # The local stack and Docker must serve the same code location.
        local = yaml.safe_load(local_workspace.read_text())["load_from"][0]
        target = next(iter(local.values()))
        local_module = target.get("module_name") if isinstance(target, dict) else target
        if local_module:
            assert local_module == module
    module_path = REPO / module.replace(".", "/")
    if not (module_path.with_suffix(".py").exists() or (module_path / "__init__.py").exists()):
        pytest.skip(f"{module} is not written yet")


def test_dockerfile_installs_the_instance_config_where_dagster_home_is() -> None:
    home = dockerfile_env()["DAGSTER_HOME"]
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    for name in ("dagster.yaml", "workspace.yaml"):
        assert any(
            f"docker/{name}" in args.split() and args.split()[-1].rstrip("/") == home
            for args in copies
        ), f"docker/{name} is not copied into {home}"


def _dagster_instance_config() -> dict[str, Any]:
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(DOCKER))  # Dagster's own schema validation
    return config


def test_dagster_storage_is_postgres_via_psycopg2_with_env_the_services_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster._config import process_config
    from dagster._core.storage.config import pg_config
    from dagster_postgres.utils import pg_url_from_config

    storage = _dagster_instance_config()["storage"]["postgres"]
    db = storage["postgres_db"]
    assert db.get("scheme") == "postgresql+psycopg2"
    for key in ("username", "password", "hostname", "db_name", "port"):
        assert isinstance(db[key], dict) and set(db[key]) == {"env"}, f"{key} must come from env"
    names = {db[key]["env"] for key in ("username", "password", "hostname", "db_name", "port")}
    for name in ("code-server", "webserver", "daemon"):
        assert names <= environment(name).keys(), f"{name} lacks {names - environment(name).keys()}"

    # Resolve the config the way the containers will, with their environment.
    for key, value in environment("daemon").items():
        monkeypatch.setenv(key, value)
    result = process_config(pg_config(), storage)
    assert result.success, result.errors
    url = urlsplit(pg_url_from_config(result.value))
    provisioned = environment("postgres")
    assert url.scheme == "postgresql+psycopg2"
    assert url.hostname in services() and url.port == 5432
    assert url.path.lstrip("/") == provisioned["OLIST_DAGSTER_PG_DATABASE"]
    assert url.username == provisioned["OLIST_DAGSTER_PG_USER"]


def test_dagster_instance_queues_runs_and_keeps_logs_on_the_shared_volume() -> None:
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator

    config = _dagster_instance_config()
    assert config["telemetry"]["enabled"] is False
    coordinator = InstanceRef.from_dir(str(DOCKER)).run_coordinator_data.rehydrate(
        QueuedRunCoordinator
    )
    assert isinstance(coordinator, QueuedRunCoordinator)
    # Runs execute in code-server; the webserver must see their compute logs.
    log_dir = config["compute_logs"]["config"]["base_dir"]
    holders = {volume_holding(name, log_dir) for name in ("code-server", "webserver", "daemon")}
    assert len(holders) == 1 and None not in holders, f"{log_dir} is not on one shared volume"


def test_dagster_instance_matches_the_local_stacks_where_it_should() -> None:
    local_file = REPO / "dagster.yaml"
    if not local_file.exists():
        pytest.skip("no local-stack dagster.yaml yet")
    local = yaml.safe_load(local_file.read_text())
    docker = _dagster_instance_config()
    # Same storage (env names, psycopg2 scheme), run queue limits and run monitoring; only the
    # launcher and the log locations may differ.
    assert docker["storage"] == local["storage"]
    for section in ("run_coordinator", "run_monitoring", "telemetry"):
        if section not in local:
            continue
        mine, theirs = dict(docker[section]), dict(local[section])
        for config in (mine, theirs):
            config.pop("module", None)  # dagster.core.* and dagster._core.* are the same module
        assert mine == theirs, section


# =================================================================================================
# The image and PostgreSQL provisioning
# =================================================================================================


def test_dockerfile_builds_the_code_location_image() -> None:
    instructions = dockerfile_instructions()
    runs = [(i, args) for i, (keyword, args) in enumerate(instructions) if keyword == "RUN"]
    users = [(i, args) for i, (keyword, args) in enumerate(instructions) if keyword == "USER"]
    project_copy = max(
        i for i, (keyword, args) in enumerate(instructions) if keyword == "COPY" and ". ." in args
    )

    def run_index(fragment: str) -> int:
        return next(i for i, args in runs if fragment in " ".join(args.split()))

    assert (REPO / "requirements.lock").is_file()
    assert (
        run_index("uv pip sync --system")
        < project_copy
        < run_index("uv pip install --system --no-deps .")
    )
    assert run_index("dbt parse --project-dir dbt --profiles-dir dbt") > project_copy
    assert users, "the image runs as root"
    last_user = users[-1][1].split(":")[0]
    assert last_user not in {"root", "0"}, "the image runs as root"
    assert users[-1][0] < run_index("dbt parse"), "dbt parse must write as the runtime user"
    makefile = REPO / "Makefile"
    pinned = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile.read_text(), re.MULTILINE)
    if pinned:
        uv_images = re.findall(r"astral-sh/uv:([\w.]+)", DOCKERFILE.read_text())
        assert uv_images and set(uv_images) == {pinned[1]}, (uv_images, pinned[1])


def test_postgres_init_script_gets_exactly_what_it_reads() -> None:
    pg = services()["postgres"]
    mounted = {target: source for source, target in map(parse_volume, pg["volumes"])}
    init = [t for t in mounted if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init and (DOCKER / mounted[init[0]]).resolve() == INIT_SCRIPT
    assert os.access(INIT_SCRIPT, os.X_OK), "init.sh must be executable (else it is sourced)"
    script = INIT_SCRIPT.read_text()
    read = set(re.findall(r"\$\{?((?:OLIST|POSTGRES)_[A-Z0-9_]+)", script))
    env = environment("postgres")
    assert read <= env.keys(), f"init.sh reads unset {sorted(read - env.keys())}"
    passed = {key for key in env if key.startswith("OLIST_")}
    assert passed <= read, f"postgres gets but init.sh ignores {sorted(passed - read)}"


# =================================================================================================
# README section and, where available, Docker Compose itself
# =================================================================================================

_COMPOSE_OPTIONS_WITH_VALUE = {
    "-f", "--file", "--env-file", "--profile", "-p", "--project-name", "--scale", "-e",
    "--env", "-u", "--user", "-w", "--workdir", "--entrypoint", "-v", "--volume", "--tail",
    "--name", "--publish", "--timeout", "-t", "--index",
}  # fmt: skip
_ONE_SERVICE_COMMANDS = {"exec", "run"}
_SERVICE_COMMANDS = {"logs", "restart", "stop", "start", "up", "ps", "rm", "kill", "build", "pull"}


def readme_compose_invocations() -> Iterator[tuple[list[str], str, list[str]]]:
    """(global options, subcommand, service names) of each `docker compose` line."""
    for line in README_SECTION.read_text().replace("\\\n", " ").splitlines():
        line = line.strip().lstrip("$ ")
        if not line.startswith("docker compose "):
            continue
        tokens = shlex.split(line.split(" #")[0])[2:]
        options, i = [], 0
        while i < len(tokens) and tokens[i].startswith("-"):
            options.append(tokens[i])
            if tokens[i] in _COMPOSE_OPTIONS_WITH_VALUE:
                options.append(tokens[i + 1])
                i += 1
            i += 1
        if i == len(tokens):
            continue
        subcommand, names, rest = tokens[i], [], tokens[i + 1 :]
        j = 0
        while j < len(rest):
            token = rest[j]
            if token in ("|", "&&", ";", ">", "<"):
                break
            if token.startswith("-"):
                j += 2 if token in _COMPOSE_OPTIONS_WITH_VALUE else 1
                continue
            names.append(token)
            if subcommand in _ONE_SERVICE_COMMANDS:
                break
            j += 1
        yield (
            options,
            subcommand,
            names if subcommand in (_ONE_SERVICE_COMMANDS | _SERVICE_COMMANDS) else [],
        )


def test_readme_section_commands_name_real_services_and_profiles() -> None:
    text = README_SECTION.read_text()
    assert "cp .env.example .env" in text
    assert "docker compose -f docker/compose.yaml --env-file .env up -d --build" in text
    invocations = list(readme_compose_invocations())
    assert len(invocations) >= 5
    profiles = {p for svc in services().values() for p in svc.get("profiles", [])}
    for options, subcommand, names in invocations:
        assert "-f" in options and "docker/compose.yaml" in options, (options, subcommand)
        used = {options[i + 1] for i, o in enumerate(options) if o == "--profile"}
        assert used <= profiles, f"unknown profile(s) {used - profiles}"
        unknown = set(names) - set(services())
        assert not unknown, f"`docker compose {subcommand}` names unknown service(s) {unknown}"
    mentioned = {p for options, _, _ in invocations for p in options}
    assert profiles <= mentioned, f"profiles the README never shows: {profiles - mentioned}"


def _docker_compose_available() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose_available(), reason="the docker compose CLI is absent")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE)]
        + ["config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
