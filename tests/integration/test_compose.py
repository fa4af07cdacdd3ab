"""docker-compose.yml and deploy/nats.conf, checked without a Docker engine."""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateways.embedded.nats import nats_server_binary
from gateways.settings import Settings

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
SCLOUD_SERVICES = {"api": "api", "worker": "worker", "hostd": "hostd"}


def _interpolated(value: str) -> str:
    """Compose's ``${NAME:-default}`` with every variable left at its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def nats_conf(compose: dict[str, Any]) -> Path:
    mounts = [m.split(":") for m in compose["services"]["nats"]["volumes"]]
    configs = [REPO / host for host, target, *_ in mounts if target == "/etc/nats/nats.conf"]
    assert len(configs) == 1
    return configs[0]


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "nats", *SCLOUD_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["nats"]["image"].startswith("nats:2.10")
    assert (REPO / "Dockerfile").read_text().startswith("#")
    assert "FROM python:3.11-slim" in (REPO / "Dockerfile").read_text()
    for name, subcommand in SCLOUD_SERVICES.items():
        service = services[name]
        assert service["build"] == "."
        assert service["image"] == "scloudstack:dev"
        assert service["command"] == ["scloud", subcommand]


def test_platform_processes_reach_postgres_and_nats(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    user, database = postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
    password = _interpolated(postgres["POSTGRES_PASSWORD"])
    for name in SCLOUD_SERVICES:
        service = compose["services"][name]
        env = {key: _interpolated(str(value)) for key, value in service["environment"].items()}
        settings = Settings.from_env(env)
        assert settings.database_url == f"postgresql://{user}:{password}@postgres:5432/{database}"
        assert settings.nats_url == "nats://nats:4222"
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "nats": {"condition": "service_healthy"},
        }


def test_servers_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in ("postgres", "nats"):
        healthcheck = compose["services"][name]["healthcheck"]
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL")
        assert healthcheck["retries"] >= 1
    assert "js-enabled-only=true" in " ".join(compose["services"]["nats"]["healthcheck"]["test"])


def test_nats_config_syncs_every_write(compose: dict[str, Any], nats_conf: Path) -> None:
    text = nats_conf.read_text()
    settings = [line.split("#")[0].strip() for line in text.splitlines()]
    assert "sync_interval: always" in settings
    assert "--config" in compose["services"]["nats"]["command"]
    assert "/etc/nats/nats.conf" in compose["services"]["nats"]["command"]


def test_nats_config_is_valid_for_nats_server(nats_conf: Path) -> None:
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(nats_conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    """Against the compose-spec schema that the check-jsonschema package ships."""
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("check_jsonschema")
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
