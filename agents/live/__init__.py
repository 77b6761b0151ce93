"""Live view at the agent: a camera's H.264 packets from RTSP to a media node over WHIP, never transcoded.

`h264.py` makes every keyframe decodable on its own (Annex-B, SPS/PPS in band), `source.py` reads the camera in a
thread of its own, `whip.py` is the WHIP client (RFC 9725); `agents/publisher.py` runs publications on command
from the uplink.
"""
