"""Enrolment: trade a technician's one-time code for the agent's own token, and keep that token safe.

The code is made in the controller by a technician for one school; the agent posts it once to
`protocol.uplink.ENROL_PATH` and gets back its id and a token that the controller stores only hashed. The
token is written to `<state_dir>/agent-token.json` with mode 0600 and registered with the log filter.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from common.files import write_atomically
from common.logs import SECRETS
from protocol.uplink import ENROL_PATH, EnrolRequest, EnrolResponse

TOKEN_FILE = "agent-token.json"  # noqa: S105 (a file name, not a secret)


class EnrolmentError(Exception):
    """Enrolment failed; the message says why (wrong or used code, controller unreachable, bad answer)."""


@dataclass(frozen=True)
class StoredCredentials:
    agent_id: str
    site_id: str
    site_name: str
    controller_url: str
    token: str


async def enrol(
    controller_url: str, code: str, *, hostname: str, version: str, timeout_s: float = 15.0
) -> EnrolResponse:
    """Post the one-time code; the controller answers with the agent's id and token."""
    try:
        request = EnrolRequest(code=code.strip(), hostname=hostname, version=version)
    except ValidationError as exc:
        raise EnrolmentError(f"the enrolment code is not valid: {exc.errors()[0]['msg']}") from None
    url = controller_url.rstrip("/") + ENROL_PATH
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.post(url, data=request.model_dump_json(), headers={"Content-Type": "application/json"}) as r,
        ):
            body = await r.content.read(64 * 1024)
            if r.status != 200:
                raise EnrolmentError(f"the controller refused the code (HTTP {r.status}): {_error_text(body)}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise EnrolmentError(f"cannot reach the controller at {controller_url}: {exc or type(exc).__name__}") from None
    try:
        response = EnrolResponse.model_validate_json(body)
    except ValidationError:
        raise EnrolmentError("the controller's answer is not an enrolment response") from None
    SECRETS.add(response.token)
    return response


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return str(data)[:200]


class TokenStore:
    """The agent's credentials on disk, readable by root only."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / TOKEN_FILE

    def load(self) -> StoredCredentials | None:
        """The stored credentials, or None before enrolment. A damaged file is an error, not a silent None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise EnrolmentError(f"cannot read {self.path}: {exc}") from None
        try:
            creds = StoredCredentials(**{k: str(data[k]) for k in StoredCredentials.__dataclass_fields__})
        except (KeyError, TypeError):
            raise EnrolmentError(f"{self.path} is damaged: enrol again") from None
        SECRETS.add(creds.token)
        return creds

    def save(self, controller_url: str, response: EnrolResponse) -> StoredCredentials:
        creds = StoredCredentials(
            agent_id=response.agent_id,
            site_id=response.site_id,
            site_name=response.site_name,
            controller_url=controller_url.rstrip("/"),
            token=response.token,
        )
        write_atomically(self.path, json.dumps(creds.__dict__).encode("utf-8"), mode=0o600, durable=True)
        return creds

    async def aload(self) -> StoredCredentials | None:
        return await asyncio.to_thread(self.load)

    async def asave(self, controller_url: str, response: EnrolResponse) -> StoredCredentials:
        return await asyncio.to_thread(self.save, controller_url, response)
