"""docker/ checked against the installed Airflow and the code, without a Docker engine.

``make check-docker`` validates the compose file's schema (docker-compose) and lints both files
(dclint, hadolint); these tests check what those tools cannot know: that every ``AIRFLOW__*``
setting names a real option of Airflow 3.3, that the connections are the ones the code looks
up, that the image is pinned to the Airflow and Python the project is tested on, and that
every long-running service has a health check.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from airflow_image_catalog.storage.s3 import DEFAULT_CONN_ID
from airflow_image_catalog.tooling.stack import REPO
from tests.deploy.test_install_modes import PACKAGE_FILES

DOCKER = REPO / "docker"
#: the deployment's settings that name no host or secret: compose's env_file, and the Celery test's settings
AIRFLOW_ENV = DOCKER / "airflow.env"
ONE_SHOT = {"airflow-init", "minio-init"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def read_env_file(path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments), as compose reads an env file."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value for key, value in pairs}


def _env_example() -> dict[str, str]:
    return read_env_file(DOCKER / ".env.example")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (``$$`` stays a literal ``$``)."""
    def value(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if name in env and env[name] != "":
            return env[name]
        if kind == "?":
            raise AssertionError(f"{name} is required ({rest}) but .env.example does not set it")
        return rest or ""
    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(_interpolate((DOCKER / "compose.yaml").read_text(), _env_example()))


def _airflow_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith(
        "airflow-image-catalog")}


def _environment(service: dict) -> dict[str, str]:
    """What a service's container gets: its env_file, under its ``environment``."""
    files = service.get("env_file", [])
    return {**{k: v for f in ([files] if isinstance(files, str) else files) for k, v in read_env_file(DOCKER / f).items()},
            **service.get("environment", {})}


def test_every_airflow_setting_is_an_option_of_the_installed_airflow(compose):
    from airflow.configuration import conf

    known = {(section, option) for section, body in conf.configuration_description.items()  # the Celery provider's too
             for option in body.get("options", {})}
    names = {name for svc in _airflow_services(compose).values() for name in _environment(svc)}
    settings = sorted(name for name in names if name.startswith("AIRFLOW__"))
    assert len(settings) > 15
    unknown = [name for name in settings
               if tuple(name[len("AIRFLOW__"):].lower().split("__", 1)) not in known]
    assert unknown == []


def test_every_airflow_service_reads_the_shared_settings(compose):
    """compose.yaml and the Celery test run one deployment: the settings in airflow.env, set nowhere else."""
    shared = read_env_file(AIRFLOW_ENV)
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name, svc in _airflow_services(compose).items():
        assert svc["env_file"] == "airflow.env", name
        assert set(shared).isdisjoint(svc.get("environment", {})), name  # one source for each setting


def test_connections_are_the_ones_the_code_uses(compose):
    env = _environment(compose["services"]["airflow-worker"])
    aws = json.loads(env[f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}"])  # the S3 storage's connection
    assert aws["conn_type"] == "aws" and aws["extra"]["endpoint_url"] == "http://minio:9000"
    edit = {name: json.loads(value) for name, value in env.items()
            if name.startswith("AIRFLOW_CONN_IMAGE_EDIT")}
    assert {c["extra"]["backend"] for c in edit.values()} == {"openai", "bfl"}
    assert all(c["conn_type"] == "image_edit" and "edit-service:8765" in c["host"] for c in edit.values())
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")


def test_secrets_come_from_the_env_file_only(compose):
    text = (DOCKER / "compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                   "MINIO_ROOT_PASSWORD"):
        assert f"${{{secret}:?" in text, f"{secret} must be required from .env, with no default"
    assert "docker/.env" in (REPO / ".gitignore").read_text().splitlines()


def test_services_health_checks_and_dependencies(compose):
    services = compose["services"]
    assert {"postgres", "redis", "minio", "edit-service", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "marquez"} <= set(services)
    unchecked = [name for name, svc in services.items()
                 if name not in ONE_SHOT | {"marquez-web"} and "healthcheck" not in svc]
    assert unchecked == []
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker" and "deploy" not in worker  # scaled with --scale
    for name in ("airflow-scheduler", "airflow-triggerer", "airflow-worker"):
        needs = services[name]["depends_on"]
        assert needs["airflow-init"]["condition"] == "service_completed_successfully"
        assert needs["minio-init"]["condition"] == "service_completed_successfully"
    assert {svc.get("profiles", [None])[0] for name, svc in services.items() if name.startswith("marquez")} == {
        "lineage"}


def test_image_is_pinned_to_the_tested_airflow_and_python():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    airflow = next(line.split("==")[1] for line in (REPO / "constraints.txt").read_text().splitlines()
                   if line.startswith("apache-airflow=="))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{airflow}-python{python}\n" in dockerfile
    assert "-c /opt/catalog/src/constraints.txt" in dockerfile  # the package's dependencies pinned
    copied = " ".join(line for line in dockerfile.splitlines() if line.startswith("COPY"))
    assert all(name in copied for name in PACKAGE_FILES)


def _offline() -> dict:
    return yaml.safe_load(_interpolate((DOCKER / "compose.offline.yaml").read_text(), _env_example()))


def test_the_offline_override_puts_every_service_on_the_host_network_on_distinct_loopback_ports(compose):
    """compose.offline.yaml: every service of the stack (but the profiles') on the host network, settings that
    are Airflow options, and each server on its own port (all on the host's loopback, so they must differ)."""
    from airflow.configuration import conf

    offline = _offline()["services"]
    # every service, the profiles' too: one without network_mode would make compose create a bridge network
    assert set(offline) == set(compose["services"]) and all(svc["network_mode"] == "host" for svc in offline.values())
    assert all("ports" not in svc for svc in compose["services"].values())  # published ports: compose.override.yaml
    override = yaml.safe_load(_interpolate((DOCKER / "compose.override.yaml").read_text(), _env_example()))
    assert all(port.startswith("127.0.0.1:") for svc in override["services"].values() for port in svc["ports"])

    known = {(section, option) for section, body in conf.configuration_description.items()
             for option in body.get("options", {})}
    settings = {name: value for svc in offline.values() for name, value in svc.get("environment", {}).items()}
    unknown = [name for name in settings if name.startswith("AIRFLOW__")
               and tuple(name[len("AIRFLOW__"):].lower().split("__", 1)) not in known]
    assert unknown == []
    ports = re.findall(r"\$\{(OFFLINE_\w+_PORT|AIRFLOW_UI_PORT):-(\d+)\}", (DOCKER / "compose.offline.yaml").read_text())
    defaults = {name: port for name, port in ports}
    assert len(defaults) >= 7 and len(set(defaults.values())) == len(defaults), defaults  # one port per server
    assert all(len({port for n, port in ports if n == name}) == 1 for name in defaults)  # one default per knob
    # the hosts the services reach each other at: loopback only
    hosts = re.findall(r"(?:https?|redis|postgresql\+psycopg2|db\+postgresql)://(?:[^@/\s\"]*@)?([^:/\s\"]+)",
                       json.dumps(settings))
    assert hosts and set(hosts) == {"127.0.0.1"}, hosts
