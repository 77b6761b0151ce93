"""WebRTC pieces shared by the edge agent (WHIP publisher) and the media node (forwarding).

Neither part imports the other; both import this package. `rtc.aiortc_adapter` holds every use of aiortc and
aioice internals, pinned to one aiortc version; `rtc.packet_track` is a track that sends pre-encoded packets.
"""
