"""The JSON shapes of the people API's successful answers (tokens, users, the audit log, classes, children),
for the OpenAPI document; unknown keys are forbidden so that an answer that grows a field without its
description is caught (tests/controller/people/test_answers.py and the schemathesis run)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenOut(_Answer):
    id: int
    name: str
    created_at: AwareDatetime
    expires_at: AwareDatetime
    last_used_at: AwareDatetime | None
    revoked: bool


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret, shown once")


class TokensOut(_Answer):
    tokens: list[TokenOut]


class UserOut(_Answer):
    id: int
    username: str
    display_name: str
    role: str
    unit_id: int | None
    disabled: bool
    locked: bool
    created_at: AwareDatetime


class UserWithPasswordOut(UserOut):
    password: str = Field(description="the first (or new) password, shown once")


class UsersOut(_Answer):
    users: list[UserOut]


class AuditEntryOut(_Answer):
    id: int
    at: AwareDatetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    address: str | None


class AuditPageOut(_Answer):
    entries: list[AuditEntryOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


class ClassOut(_Answer):
    id: int
    unit_id: int
    school_year: str
    name: str


class ClassesOut(_Answer):
    classes: list[ClassOut]


class ChildOut(_Answer):
    id: int
    unit_id: int
    code: str
    full_name: str
    date_of_birth: date
    class_id: int | None


class ChildrenOut(_Answer):
    children: list[ChildOut]


class ClassDetailOut(ClassOut):
    children: list[ChildOut]
    all_consented: bool


class ConsentOut(_Answer):
    id: int
    given_by: str
    given_at: AwareDatetime
    withdrawn_at: AwareDatetime | None


class GuardianOut(_Answer):
    user_id: int
    username: str
    display_name: str
    relationship: str
    revoked: bool


class PlacementOut(_Answer):
    class_id: int
    started_at: AwareDatetime
    ended_at: AwareDatetime | None


class ChildDetailOut(ChildOut):
    consents: list[ConsentOut]
    guardians: list[GuardianOut] | None = Field(default=None, description="left out for parents")
    placements: list[PlacementOut] | None = Field(default=None, description="left out for parents")


class StaffAssignedOut(_Answer):
    class_id: int
    user_id: int


class GuardianLinkedOut(_Answer):
    child_id: int
    user_id: int


class RevokedOut(_Answer):
    revoked: bool


class ImportErrorOut(_Answer):
    row: int
    message: str


class ImportReportOut(_Answer):
    """The roster import's report. With bad rows the answer is a 422 carrying the same report plus `error`."""

    kind: str
    rows: int
    dry_run: bool
    applied: bool
    created: int
    updated: int
    unchanged: int
    error_count: int
    errors: list[ImportErrorOut]
