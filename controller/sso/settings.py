"""What the configuration says of single sign-on: one entry of `sso_role_map` (no imports from the controller, so
`controller.config` can use it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SsoRoleName = Literal["admin", "department_booker", "district_technician", "school_staff", "teacher", "parent"]


class SsoRole(BaseModel):
    """The local role a provider group (or role) value gives, and for a scoped role its unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: SsoRoleName = Field(description="the local role")
    unit_id: int | None = Field(default=None, ge=1, description="the unit of a scoped role (none for admin)")
