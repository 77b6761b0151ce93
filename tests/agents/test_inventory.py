"""The inventory: persisted across restarts, and a change feed that carries only changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.inventory import MISSING_REASON, Inventory
from protocol.camera import CameraReport, CameraState, DeviceInfo, StreamProfile

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def report(
    ref: str, at: datetime, state: CameraState = CameraState.READY, reason: str = "ok", **kw: object
) -> CameraReport:
    data: dict[str, object] = {
        "endpoint_ref": ref,
        "address": "198.18.1.5",
        "state": state,
        "reason": reason,
        "first_seen": at,
        "last_seen": at,
        "changed_at": at,
        "device": DeviceInfo(model="X1"),
        "profiles": [StreamProfile(token="p", name="main", role="main", encoding="H264", width=1280, height=720)],
    }
    data.update(kw)
    return CameraReport.model_validate(data)


async def test_changes_only_are_emitted(tmp_path: Path) -> None:
    async with await Inventory.open(tmp_path) as inventory:
        seen: list[CameraReport] = []
        inventory.subscribe(seen.append)
        await inventory.record(report("urn:a", T0))
        await inventory.record(report("urn:a", T0 + timedelta(minutes=5)))  # same facts, later: not a change
        await inventory.record(report("urn:a", T0 + timedelta(minutes=10), CameraState.AUTH_FAILED, "refused"))
        await inventory.record(report("urn:a", T0 + timedelta(minutes=15), CameraState.AUTH_FAILED, "refused"))
        await inventory.record(
            report("urn:a", T0 + timedelta(minutes=20), CameraState.AUTH_FAILED, "refused", profiles=[])
        )
        assert [(r.state, r.last_seen - T0) for r in seen] == [
            (CameraState.READY, timedelta(0)),
            (CameraState.AUTH_FAILED, timedelta(minutes=10)),
            (CameraState.AUTH_FAILED, timedelta(minutes=20)),
        ]
        assert inventory.changes.qsize() == 3
        current = inventory.get("urn:a")
        assert current is not None
        assert current.first_seen == T0 and current.changed_at == T0 + timedelta(minutes=10)


async def test_a_restart_reloads_cameras_and_approvals(tmp_path: Path) -> None:
    async with await Inventory.open(tmp_path) as inventory:
        await inventory.record_many([report("urn:a", T0), report("urn:b", T0, CameraState.PENDING_APPROVAL, "outside")])
        assert await inventory.approve("urn:b")
        assert not await inventory.approve("urn:b")
    async with await Inventory.open(tmp_path) as again:
        assert [r.endpoint_ref for r in again.snapshot()] == ["urn:a", "urn:b"]
        assert again.approved == {"urn:b"}
        seen: list[CameraReport] = []
        again.subscribe(seen.append)
        await again.record(report("urn:a", T0 + timedelta(hours=1)))
        assert seen == []  # nothing changed across the restart
        assert again.get("urn:a") == report("urn:a", T0 + timedelta(hours=1)).model_copy(
            update={"first_seen": T0, "changed_at": T0}
        )


async def test_cameras_missing_from_a_pass_become_unreachable_once(tmp_path: Path) -> None:
    async with await Inventory.open(tmp_path) as inventory:
        await inventory.record_many([report("urn:a", T0), report("urn:b", T0)])
        seen: list[CameraReport] = []
        inventory.subscribe(seen.append)
        later = T0 + timedelta(minutes=5)
        await inventory.mark_missing({"urn:a"}, later)
        await inventory.mark_missing({"urn:a"}, later + timedelta(minutes=5))
        assert [(r.endpoint_ref, r.state, r.reason, r.changed_at) for r in seen] == [
            ("urn:b", CameraState.UNREACHABLE, MISSING_REASON, later)
        ]
        assert seen[0].last_seen == T0
