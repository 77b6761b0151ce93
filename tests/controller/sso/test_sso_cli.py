"""`python -m controller sso-link`: an existing user linked to their subject at the provider."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.sso.links import link_key
from tests.controller.test_cli import _json, _run

ISSUER = "https://sso.sogd.example.vn"


def _env(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "client-secret"
    secret.write_text("x\n")
    return {
        "KETNOI_CONTROLLER_SSO_ISSUER": ISSUER,
        "KETNOI_CONTROLLER_SSO_CLIENT_ID": "ketnoi",
        "KETNOI_CONTROLLER_SSO_CLIENT_SECRET_FILE": str(secret),
    }


def test_sso_link_links_a_user_once_and_explains_refusals(tmp_path: Path) -> None:
    env = _env(tmp_path)
    not_configured = _run(tmp_path, "sso-link", "--username", "admin", "--subject", "s-1")
    assert not_configured.returncode == 1 and "not configured" in not_configured.stderr
    _json(_run(tmp_path, "create-admin", "--username", "admin", "--json"))
    _json(_run(tmp_path, "create-admin", "--username", "admin2", "--json"))
    linked = _json(_run(tmp_path, "sso-link", "--username", "admin", "--subject", "s-1", "--json", env=env))
    assert linked == {"id": 1, "username": "admin", "issuer": ISSUER, "subject": "s-1"}
    with sqlite3.connect(tmp_path / "data" / "controller.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()
        link = db.execute("SELECT link_key, issuer, subject, user_id, created_by FROM sso_links").fetchall()
        (action,) = db.execute("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert stored.startswith("$argon2id$")  # the password still works: a link is another way in, not a replacement
    assert link == [(link_key(ISSUER, "s-1"), ISSUER, "s-1", 1, "cli")] and action == "sso.link"
    taken = _run(tmp_path, "sso-link", "--username", "admin2", "--subject", "s-1", env=env)
    assert taken.returncode == 1 and "already linked to admin" in taken.stderr and "Traceback" not in taken.stderr
    unknown = _run(tmp_path, "sso-link", "--username", "nobody", "--subject", "s-2", env=env)
    assert unknown.returncode == 1 and "no user named nobody" in unknown.stderr
