"""The production recipe: docker-compose.yml and the Dockerfile.

Docker cannot run here, so these tests parse both files and check what would otherwise only
fail on a real deployment: that every role runs the right command against the right Kafka and
PostgreSQL, starts in the right order, and is configured only through settings that exist.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from pydantic_settings import BaseSettings

from hub import settings as hub_settings
from hub.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

ROLES = ("api", "projector", "dispatcher", "connectors")
KAFKA_SERVICE = "kafka"
POSTGRES_SERVICE = "postgres"
MIGRATE_SERVICE = "migrate"
KOPPELHUB_VARIABLE = re.compile(r"\bKOPPELHUB_[A-Z0-9_]*[A-Z0-9]")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and the $$ escape.
COMPOSE_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
REQUIRED_PLACEHOLDER = "set-by-the-operator"


# --- reading the files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def interpolate(value: str) -> str:
    """Resolve compose variables as `docker compose` would with an empty environment.

    Defaults apply; a required variable (``:?``) resolves to a placeholder, as the operator
    must set it.
    """

    def resolve(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("bare"):
            return ""
        op = match.group("op")
        if op in ("-", ":-"):
            return match.group("arg")
        if op in ("?", ":?"):
            return REQUIRED_PLACEHOLDER
        return ""

    return COMPOSE_VARIABLE.sub(resolve, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whether written as a mapping or a list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    """Arguments of ENTRYPOINT/CMD: the JSON exec form, else the shell form split."""
    if arguments.startswith("["):
        return [str(part) for part in json.loads(arguments)]
    return shlex.split(arguments)


def image_entrypoint() -> list[str]:
    entrypoints = [args for keyword, args in final_stage() if keyword == "ENTRYPOINT"]
    assert entrypoints, "the Dockerfile's final stage sets no ENTRYPOINT"
    return exec_form(entrypoints[-1])


def effective_argv(service: dict[str, Any]) -> list[str]:
    """What the container runs: the service's entrypoint (else the image's) plus its command."""
    entrypoint = argv(service["entrypoint"]) if "entrypoint" in service else image_entrypoint()
    return entrypoint + argv(service.get("command"))


def is_built_from_dockerfile(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, str):
        return (ROOT / build).resolve() == ROOT
    if isinstance(build, dict):
        context = (ROOT / build.get("context", ".")).resolve()
        return context == ROOT and (context / build.get("dockerfile", "Dockerfile")) == DOCKERFILE
    return False


def setting_env_names() -> set[str]:
    """Every environment variable hub.settings reads, derived from the settings classes.

    A field whose type is itself a settings class is a group (``kafka``, ``delivery``): it has
    no variable of its own, and its fields are read with the group's own prefix.
    """
    names: set[str] = set()
    pending: list[type[BaseSettings]] = [hub_settings.Settings]
    while pending:
        settings_class = pending.pop()
        prefix = settings_class.model_config.get("env_prefix", "")
        for field_name, field in settings_class.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
                pending.append(annotation)
                continue
            names.add(f"{prefix}{field_name}".upper())
    return names


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host port, container port) pairs, short or long port syntax."""
    pairs: list[tuple[str, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.append((str(port.get("published", "")), str(port["target"])))
            continue
        parts = str(port).split("/", 1)[0].split(":")
        pairs.append((parts[-2] if len(parts) > 1 else "", parts[-1]))
    return pairs


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,…`` as {NAME: (host, port)}."""
    listeners: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        name, _, address = entry.strip().partition("://")
        host, _, port = address.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


def version_of(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    match = re.match(r"\d+(?:\.\d+)*", tag)
    assert match, f"{image}: pin a numeric version tag"
    return tuple(int(part) for part in match.group(0).split("."))


# --- the settings the recipe may use ------------------------------------------------------------


def test_setting_names_come_from_every_settings_group() -> None:
    names = setting_env_names()

    assert {"KOPPELHUB_DATABASE_URL", "KOPPELHUB_HTTP_HOST", "KOPPELHUB_ADMIN_TOKEN"} <= names
    assert "KOPPELHUB_KAFKA_BOOTSTRAP" in names
    assert "KOPPELHUB_DELIVERY_RETRY_SCHEDULE" in names
    assert not {"KOPPELHUB_KAFKA", "KOPPELHUB_DELIVERY"} & names


def test_every_koppelhub_variable_in_the_recipe_is_a_real_setting() -> None:
    known = setting_env_names()
    for path in (COMPOSE_FILE, DOCKERFILE):
        used = set(KOPPELHUB_VARIABLE.findall(path.read_text(encoding="utf-8")))
        assert used, f"{path.name} configures no KOPPELHUB_ setting"
        assert used <= known, f"{path.name} uses unknown settings: {sorted(used - known)}"


# --- Kafka ---------------------------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_from_the_official_image(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services[KAFKA_SERVICE]
    env = environment(kafka)

    assert kafka["image"].startswith("apache/kafka:")
    assert version_of(kafka["image"]) >= (3, 9)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [voter.split("@")[0] for voter in voters] == [env["KAFKA_NODE_ID"]]
    controller_names = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    assert controller_names <= set(listeners)
    controller_port = int(voters[0].rpartition(":")[2])
    assert controller_port in {listeners[name][1] for name in controller_names}


def test_roles_bootstrap_from_the_listener_kafka_advertises(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services[KAFKA_SERVICE])
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    advertised = {
        f"{host}:{port}": name
        for name, (host, port) in kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"]).items()
    }

    for name in (*ROLES, MIGRATE_SERVICE):
        bootstrap = environment(services[name])["KOPPELHUB_KAFKA_BOOTSTRAP"]
        assert bootstrap in advertised, f"{name}: {bootstrap} is not an advertised listener"
        listener = advertised[bootstrap]
        assert listener not in controllers, f"{name}: bootstraps from the controller listener"
        host, _, port = bootstrap.rpartition(":")
        assert host == KAFKA_SERVICE, f"{name}: {host} is not the kafka service on the network"
        assert listeners[listener][1] == int(port), f"{name}: kafka listens elsewhere"


def test_kafka_leaves_topic_creation_to_the_hub_and_fits_one_node(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services[KAFKA_SERVICE])

    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    for name in ROLES:
        role_env = environment(services[name])
        assert role_env.get("KOPPELHUB_KAFKA_REPLICATION_FACTOR", "1") == "1", name


# --- PostgreSQL ----------------------------------------------------------------------------------


def test_postgres_is_version_16_or_newer(services: dict[str, dict[str, Any]]) -> None:
    image = services[POSTGRES_SERVICE]["image"]

    assert image.split(":")[0] in {"postgres", "docker.io/library/postgres"}
    assert version_of(image)[0] >= 16


def test_database_url_points_at_the_postgres_service(
    services: dict[str, dict[str, Any]],
) -> None:
    pg_env = {key: interpolate(value) for key, value in environment(services[POSTGRES_SERVICE]).items()}

    for name in (*ROLES, MIGRATE_SERVICE):
        url = urlsplit(interpolate(environment(services[name])["KOPPELHUB_DATABASE_URL"]))
        assert url.scheme in {"postgresql", "postgres"}, name
        assert url.hostname == POSTGRES_SERVICE, name
        assert (url.port or 5432) == 5432, name
        assert url.path.lstrip("/") == pg_env["POSTGRES_DB"], name
        assert url.username == pg_env["POSTGRES_USER"], name
        assert url.password == pg_env["POSTGRES_PASSWORD"], name


# --- state and health ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "data_dir"),
    [(KAFKA_SERVICE, "/var/lib/kafka/data"), (POSTGRES_SERVICE, "/var/lib/postgresql/data")],
)
def test_stateful_services_keep_their_data_in_named_volumes(
    compose: dict[str, Any], service: str, data_dir: str
) -> None:
    mounts = {
        target: source
        for source, _, target in (
            str(volume).partition(":") for volume in compose["services"][service]["volumes"]
        )
    }

    assert data_dir in mounts, f"{service}: {data_dir} is not on a volume"
    assert mounts[data_dir] in (compose.get("volumes") or {}), f"{service}: not a named volume"


def test_every_service_waited_on_as_healthy_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    waited_on = {
        dependency
        for service in services.values()
        for dependency, spec in (service.get("depends_on") or {}).items()
        if spec.get("condition") == "service_healthy"
    }

    assert {KAFKA_SERVICE, POSTGRES_SERVICE} <= waited_on
    for name in waited_on:
        healthcheck = services[name].get("healthcheck") or {}
        assert healthcheck.get("test") and not healthcheck.get("disable"), name
    assert "pg_isready" in argv(services[POSTGRES_SERVICE]["healthcheck"]["test"])


# --- the roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_role_is_built_from_the_dockerfile_and_runs_koppelhub_role(
    services: dict[str, dict[str, Any]], role: str
) -> None:
    service = services[role]

    assert is_built_from_dockerfile(service)
    assert effective_argv(service) == ["koppelhub", role]


@pytest.mark.parametrize("role", ROLES)
def test_role_starts_after_healthy_kafka_and_postgres_and_a_finished_migration(
    services: dict[str, dict[str, Any]], role: str
) -> None:
    depends_on = services[role]["depends_on"]

    assert depends_on[KAFKA_SERVICE]["condition"] == "service_healthy"
    assert depends_on[POSTGRES_SERVICE]["condition"] == "service_healthy"
    assert depends_on[MIGRATE_SERVICE]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("role", ROLES)
def test_role_restarts_unless_stopped_and_shares_the_common_environment(
    compose: dict[str, Any], role: str
) -> None:
    service = compose["services"][role]
    common = {key: str(value) for key, value in compose["x-koppelhub-env"].items()}

    assert service["restart"] == "unless-stopped"
    assert common.items() <= environment(service).items()


def test_common_environment_is_written_once_as_an_anchor() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")

    assert re.search(r"^x-koppelhub-env: &koppelhub-env$", text, re.MULTILINE)
    assert text.count("KOPPELHUB_KAFKA_BOOTSTRAP:") == 1
    assert text.count("KOPPELHUB_DATABASE_URL:") == 1


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    migrate = services[MIGRATE_SERVICE]

    assert is_built_from_dockerfile(migrate)
    assert effective_argv(migrate) == ["koppelhub", "migrate"]
    assert migrate["depends_on"][POSTGRES_SERVICE]["condition"] == "service_healthy"
    # A restarting one-shot never "completes", so the roles would never start.
    assert str(migrate.get("restart", "no")) in {"no", "False", "false"}


def test_api_listens_on_all_interfaces_and_publishes_8080(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]
    env = environment(api)
    container_port = env.get(
        "KOPPELHUB_HTTP_PORT", str(hub_settings.Settings.model_fields["http_port"].default)
    )

    assert env["KOPPELHUB_HTTP_HOST"] == "0.0.0.0"
    assert ("8080", container_port) in published_ports(api)


def test_api_admin_token_must_be_supplied_by_the_operator(
    services: dict[str, dict[str, Any]],
) -> None:
    token = environment(services["api"])["KOPPELHUB_ADMIN_TOKEN"]

    assert re.fullmatch(r"\$\{KOPPELHUB_ADMIN_TOKEN:\?[^}]+\}", token)
    for name in ROLES[1:]:
        assert "KOPPELHUB_ADMIN_TOKEN" not in environment(services[name]), name


def test_api_and_connectors_share_the_data_dir_where_uploads_wait(
    services: dict[str, dict[str, Any]],
) -> None:
    env_lines = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    match = re.search(r"KOPPELHUB_DATA_DIR=(\S+)", env_lines)
    assert match, "the image sets no KOPPELHUB_DATA_DIR"
    data_dir = match.group(1)
    volumes = {}
    for role in ("api", "connectors"):
        mounts = dict(str(v).split(":", 1)[::-1] for v in services[role].get("volumes", []))
        assert data_dir in mounts, f"{role}: {data_dir} is not on a volume"
        volumes[role] = mounts[data_dir]
    assert volumes["api"] == volumes["connectors"]


def test_api_healthcheck_probes_healthz_with_python(services: dict[str, dict[str, Any]]) -> None:
    test = argv(services["api"]["healthcheck"]["test"])

    assert test[:2] == ["CMD", "python"]
    assert "/healthz" in " ".join(test)
    assert "curl" not in " ".join(test)


def test_compose_roles_are_commands_of_the_cli() -> None:
    assert isinstance(main, click.Group)

    with click.Context(main) as ctx:
        commands = set(main.list_commands(ctx))

    assert {*ROLES, MIGRATE_SERVICE} <= commands


# --- the image -----------------------------------------------------------------------------------


def test_image_is_python_3_12_slim_and_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    stages: set[str] = set()
    for keyword, arguments in instructions:
        if keyword != "FROM":
            continue
        parts = arguments.split()
        assert parts[0] == "python:3.12-slim" or parts[0] in stages, arguments
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2])

    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_installs_the_project_and_runs_koppelhub() -> None:
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]

    assert any(re.search(r"\bpip install (?:[^&;|]* )?\.(?:\s|$)", run) for run in runs)
    assert image_entrypoint() == ["koppelhub"]
    exposed = [args.split() for keyword, args in final_stage() if keyword == "EXPOSE"]
    assert "8080" in [port.split("/")[0] for ports in exposed for port in ports]


def test_image_has_no_healthcheck_the_background_roles_would_fail() -> None:
    healthchecks = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]

    assert all(args.upper() == "NONE" for args in healthchecks), (
        "one image runs every role; only the api serves /healthz (compose probes it)"
    )


def test_build_context_keeps_what_pip_install_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [
        pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    needed = ["pyproject.toml", pyproject["project"]["readme"], *packages]
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    for path in needed:
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), path
    assert {".venv", ".git"} <= set(ignored)
