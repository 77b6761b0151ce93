"""The single sign-on settings refuse what cannot work, with a message naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from controller.config import ControllerConfig

GOOD: dict[str, Any] = {
    "sso_issuer": "https://sso.sogd.example.vn/realms/sogd/",
    "sso_client_id": "ketnoi",
    "sso_client_secret_file": Path("/etc/ketnoi/sso-secret"),
    "sso_role_map": {"admins": {"role": "admin"}, "q1": {"role": "district_technician", "unit_id": 2}},
}


def test_a_complete_configuration_is_accepted_and_sso_is_off_by_default() -> None:
    config = ControllerConfig.model_validate(GOOD)
    assert config.sso_enabled and config.sso_issuer == "https://sso.sogd.example.vn/realms/sogd"
    assert config.sso_username_claim == "preferred_username" and config.sso_create_users is False
    assert not ControllerConfig().sso_enabled
    loopback = ControllerConfig.model_validate(GOOD | {"sso_issuer": "http://127.0.0.1:8080"})
    assert loopback.sso_enabled


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sso_issuer": "http://sso.sogd.example.vn"}, "https"),
        ({"sso_client_id": ""}, "sso_client_id"),
        ({"sso_client_secret_file": None}, "sso_client_secret_file"),
        ({"sso_role_map": {"admins": {"role": "admin", "unit_id": 1}}}, "admin has no unit_id"),
        ({"sso_role_map": {"teachers": {"role": "teacher"}}}, "needs one"),
        ({"sso_role_map": {"x": {"role": "superuser"}}}, "role"),
        ({"sso_role_map": {"x": {"role": "teacher", "unit_id": 4, "extra": 1}}}, "extra"),
        ({"sso_client_auth": "private_key_jwt"}, "sso_client_auth"),
    ],
)
def test_unworkable_settings_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ControllerConfig.model_validate(GOOD | change)
