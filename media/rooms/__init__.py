"""Meeting and class rooms on the media node: participants with roles, signalling over a WebSocket, and media
forwarded by the shared core (`media.forwarding`) without decoding. See media/README.md, "Meetings".

- `room`: the people and the rules (roles, host actions, class mode), without media;
- `session`: one participant's WebSocket (limits) and its publish and subscribe peer connections;
- `live`: a running room: connections, slots, speakers; `selection`, `slots`, `speakers`: who gets what;
- `plane` / `forward`: the media plane's interface and its implementation on the forwarding core;
- `extension`: the node extension (the WebSocket route, load, control);
- `botpeer`: a participant in Python (aiortc) for tests and the benchmark.
"""
