"""The agent uplink: an outbound WebSocket from the edge agent to the controller.

The agent dials out (sites are behind NAT); the controller never connects in. Every frame is one JSON object
with a `type`. Version PROTOCOL_VERSION; a controller refuses a `hello` with a version it does not speak.

Agent -> controller
  hello           first frame: version, identity, and the full inventory (a snapshot, so a reconnect resyncs)
  camera_update   one camera changed (state, reason, profiles); `seq` increases per agent, for dedup
  status          periodic liveness and figures (uptime, cameras by state)
Controller -> agent
  welcome         the controller accepted the hello; `acked_seq` is the last update it has stored
  ack             updates up to `seq` are stored; the agent can drop them from its buffer
  approve_camera  a technician approved a pending_approval device: the agent may now use it
  publish_camera  publish a camera's stream to a media node over WHIP (protocol.media), without transcoding
  stop_publishing stop a publication (no viewers left, camera removed)
Agent -> controller (live view)
  publish_state   a publication started, failed (with the reason) or stopped
  error           the controller refuses something; `fatal` closes the link (bad token, version)
Metrics (Prometheus scrapes agents through the controller: controller/uplink/metrics_proxy.py)
  metrics_request   controller -> agent: send your /metrics exposition now
  metrics_response  agent -> controller: the exposition text (cut at a line end to METRICS_BODY_LIMIT)

Enrolment (one-time code -> agent token) is plain HTTPS: POST /api/agents/enrol with `EnrolRequest`, answered
with `EnrolResponse`. The token goes in the WebSocket's Authorization header as `Bearer <token>`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from protocol.camera import CameraReport
from protocol.media import IceServer

PROTOCOL_VERSION = 1
UPLINK_PATH = "/api/agents/uplink"
ENROL_PATH = "/api/agents/enrol"
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Largest uplink frame either end accepts (a hello with a few hundred cameras fits easily)."""
METRICS_BODY_LIMIT = MAX_FRAME_BYTES // 2 - 4096
"""Largest exposition a metrics_response carries: JSON may escape every character into two, and the frame
must stay under MAX_FRAME_BYTES."""


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrolRequest(Message):
    code: str = Field(min_length=6, max_length=64)
    hostname: str = Field(min_length=1, max_length=253)
    version: str = Field(max_length=64)


class EnrolResponse(Message):
    agent_id: str
    site_id: str
    site_name: str
    token: str = Field(description="shown once; the controller keeps only its hash")


class Hello(Message):
    type: Literal["hello"] = "hello"
    version: int
    agent_version: str = Field(max_length=64)
    hostname: str = Field(max_length=253)
    started_at: AwareDatetime
    seq: int = Field(ge=0, description="the last update seq the agent has issued")
    cameras: list[CameraReport] = Field(max_length=4096)


class CameraUpdate(Message):
    type: Literal["camera_update"] = "camera_update"
    seq: int = Field(ge=1)
    at: AwareDatetime
    camera: CameraReport


class Status(Message):
    type: Literal["status"] = "status"
    at: AwareDatetime
    uptime_s: float = Field(ge=0)
    cameras_by_state: dict[str, int] = Field(default_factory=dict)


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    agent_id: str
    server_time: AwareDatetime
    acked_seq: int = Field(ge=0)
    status_interval_s: float = Field(gt=0)
    approved: list[str] = Field(default_factory=list, description="endpoint refs a technician approved")


class Ack(Message):
    type: Literal["ack"] = "ack"
    seq: int = Field(ge=0)


class ApproveCamera(Message):
    type: Literal["approve_camera"] = "approve_camera"
    endpoint_ref: str = Field(max_length=256)


class PublishCamera(Message):
    type: Literal["publish_camera"] = "publish_camera"
    request_id: str = Field(max_length=64)
    endpoint_ref: str = Field(max_length=256, description="which camera")
    profile_token: str | None = Field(default=None, max_length=128, description="None: the sub-stream")
    whip_url: str = Field(max_length=1024)
    token: str = Field(max_length=4096, description="single-use publish token for the media node")
    ice_servers: list[IceServer] = Field(default_factory=list, max_length=8)


class StopPublishing(Message):
    type: Literal["stop_publishing"] = "stop_publishing"
    endpoint_ref: str = Field(max_length=256)


class PublishState(Message):
    type: Literal["publish_state"] = "publish_state"
    request_id: str = Field(max_length=64)
    endpoint_ref: str = Field(max_length=256)
    state: Literal["publishing", "failed", "stopped"]
    reason: str = Field(default="", max_length=512)
    bytes_sent: int = Field(default=0, ge=0)


class MetricsRequest(Message):
    type: Literal["metrics_request"] = "metrics_request"
    request_id: str = Field(min_length=1, max_length=64)


class MetricsResponse(Message):
    type: Literal["metrics_response"] = "metrics_response"
    request_id: str = Field(min_length=1, max_length=64)
    body: str = Field(max_length=METRICS_BODY_LIMIT, description="Prometheus text exposition format 0.0.4")
    truncated: bool = Field(default=False, description="the agent cut the body at a line end to fit the limit")


class Error(Message):
    type: Literal["error"] = "error"
    message: str = Field(max_length=1024)
    fatal: bool = False


AgentMessage = Annotated[Hello | CameraUpdate | Status | PublishState | MetricsResponse, Field(discriminator="type")]
ControllerMessage = Annotated[
    Welcome | Ack | ApproveCamera | PublishCamera | StopPublishing | MetricsRequest | Error,
    Field(discriminator="type"),
]

AGENT_MESSAGE: TypeAdapter[AgentMessage] = TypeAdapter(AgentMessage)
CONTROLLER_MESSAGE: TypeAdapter[ControllerMessage] = TypeAdapter(ControllerMessage)
