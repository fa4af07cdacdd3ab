"""Settings are decoded in one typed place: a bad value stops with its variable's name,
and every variable is documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateways.settings import Settings, SettingsError, variables

REPO = Path(__file__).resolve().parents[2]


def test_values_are_decoded_to_their_types() -> None:
    settings = Settings.from_env(
        {
            "SCLOUD_API_PORT": "9000",
            "SCLOUD_WEBHOOK_LOOPBACK_ONLY": "1",
            "SCLOUD_FIRST_START": "0",
            "SCLOUD_HOST_STATE_DIR": "/srv/host",
            "SCLOUD_HOST_DOWN_AFTER_SECONDS": "12.5",
            "SCLOUD_STREAM": "OTHER",
            "SCLOUD_ADMIN_PASSWORD": "",
        }
    )
    assert settings.api_port == 9000 and settings.webhook_loopback_only is True
    assert settings.first_start is False and settings.host_state_dir == Path("/srv/host")
    assert settings.host_down_after_seconds == 12.5 and settings.stream_name == "OTHER"
    assert settings.admin_password is None  # empty is unset


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCLOUD_API_PORT", "eighty"),
        ("SCLOUD_API_PORT", "70000"),
        ("SCLOUD_HOST_DRIVER", "xen"),
        ("SCLOUD_WEBHOOK_LOOPBACK_ONLY", "maybe"),
        ("SCLOUD_HOST_DOWN_AFTER_SECONDS", "-1"),
        ("SCLOUD_BILLING_SETTLE_SECONDS", "soon"),
        ("SCLOUD_SCHEMA", "Robert'); DROP"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: "):
        Settings.from_env({name: value})


def test_a_process_with_a_bad_value_stops_at_once_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCLOUD_")}
    env |= {"SCLOUD_API_PORT": "eighty", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()[-1] == "scloud: SCLOUD_API_PORT: Expected `int`, got `str`"
    )
    assert "Traceback" not in done.stderr


def test_every_variable_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = set(re.findall(r"^\|.*$", readme, re.MULTILINE))
    documented = {name for row in table for name in re.findall(r"`(SCLOUD_[A-Z_]+)`", row)}
    missing = sorted(set(variables().values()) - documented)
    assert not missing, f"not in the README's configuration table: {missing}"
