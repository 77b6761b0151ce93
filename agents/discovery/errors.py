"""The discovery package's error vocabulary: what went wrong with a device, in a technician's words."""

from __future__ import annotations

from protocol.camera import CameraState


class DeviceError(Exception):
    """A device could not be interrogated; `state` and `reason` go into its report."""

    state = CameraState.UNREACHABLE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unreachable(DeviceError):
    """Refused, timed out, or answered with something unusable."""


class AuthFailed(DeviceError):
    """The device refused the credentials."""

    state = CameraState.AUTH_FAILED


class HostileReply(Unreachable):
    """The reply was refused as hostile: a DTD, entity declarations, external references or an oversized body."""


class OutsideNetworks(DeviceError):
    """The device points outside the site's camera networks (an XAddr or a stream URI)."""

    state = CameraState.PENDING_APPROVAL
