"""The agent's configuration and target ranges: what is accepted, what is refused, and with which message."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.config import load_agent_config
from agents.discovery.credentials import CredentialBook
from agents.networks import CameraNetworks, TargetError, check_target, expand_targets
from common.config import ConfigError
from common.logs import SECRETS


def test_targets_expand_addresses_networks_and_ranges() -> None:
    assert expand_targets(["198.18.3.10"]) == ["198.18.3.10"]
    assert expand_targets(["198.18.3.0/29"]) == [f"198.18.3.{i}" for i in range(1, 7)]
    assert expand_targets(["198.18.3.10-198.18.3.12", "198.18.3.11"]) == ["198.18.3.10", "198.18.3.11", "198.18.3.12"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.0.0.0/8", "at most"),
        ("198.18.3.40-198.18.3.10", "ends before it starts"),
        ("198.18.3.1-::1", "same IP version"),
        ("camera.local", "not an address"),
        ("198.18.3.300", "not an address"),
    ],
)
def test_bad_targets_are_refused_with_a_reason(entry: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        check_target(entry)


def test_the_total_number_of_targets_is_capped() -> None:
    with pytest.raises(TargetError, match="more than 100"):
        expand_targets(["198.18.0.0/24"], limit=100)


def test_camera_networks_membership() -> None:
    networks = CameraNetworks(["198.18.1.0/24", "198.19.0.0/16"])
    assert networks.contains("198.18.1.7") and networks.contains("198.19.200.1")
    assert not networks.contains("198.18.2.7") and not networks.contains("camera.local")
    assert networks.url_inside("rtsp://198.18.1.7:554/main")
    assert not networks.url_inside("rtsp://198.18.9.7/main") and not networks.url_inside("http://cam.example/x")
    assert networks.contains("::ffff:198.18.1.7")


def test_a_full_file_loads_and_registers_the_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file-Zq9\n")
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
state_dir = "{tmp_path}"
[site]
camera_networks = ["198.18.1.0/24"]
unicast_targets = ["198.18.3.0/28", "198.18.4.10-198.18.4.40"]
probe_address = "198.18.1.1"
[credentials]
username = "onvif"
password_file = "{secret_file}"
[[camera_credentials]]
match = "198.18.1.50"
username = "other"
password_env = "KETNOI_TEST_CAM_PW"
"""
    )
    monkeypatch.setenv("KETNOI_TEST_CAM_PW", "from-the-env-Kx7")
    monkeypatch.setenv("KETNOI_AGENT_REDISCOVERY_INTERVAL_S", "60")
    config = load_agent_config(path)
    assert config.rediscovery_interval_s == 60
    assert config.site.probe_address == "198.18.1.1"
    book = CredentialBook.from_config(config)
    assert book.for_device("urn:uuid:x", "198.18.1.9").password == "from-a-file-Zq9"
    assert book.for_device("urn:uuid:x", "198.18.1.50").username == "other"
    assert SECRETS.scrub("a from-a-file-Zq9 b from-the-env-Kx7") == "a *** b ***"


def test_errors_name_the_field_and_its_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[site]\ncamera_networks = ["198.18.1.0/33"]\nunicast_targets = ["10.0.0.0/8"]\nbogus = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path, environ={})
    text = str(caught.value)
    assert "site.camera_networks.0" in text and "not a network" in text
    assert "site.unicast_targets.0" in text and "at most" in text
    assert "site.bogus" in text and "KETNOI_AGENT_SITE__BOGUS" in text


def test_the_password_may_be_given_one_way_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one way only"):
        load_agent_config(
            None,
            environ={
                "KETNOI_AGENT_SITE__CAMERA_NETWORKS": '["198.18.1.0/24"]',
                "KETNOI_AGENT_CREDENTIALS__PASSWORD": "x-pass",
                "KETNOI_AGENT_CREDENTIALS__PASSWORD_ENV": "X",
            },
        )


def test_a_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read password_file"):
        load_agent_config(
            None,
            environ={
                "KETNOI_AGENT_SITE__CAMERA_NETWORKS": '["198.18.1.0/24"]',
                "KETNOI_AGENT_CREDENTIALS__PASSWORD_FILE": str(tmp_path / "absent"),
            },
        )
