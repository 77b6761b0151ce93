"""The media node (aiortc): meeting rooms and camera relays that forward encoded media, never transcoding.

`python -m media serve --config PATH` runs a node (`media/node/`); the forwarding core is `forwarding.py`,
`relay.py` and `peers.py`; meeting rooms are `media/rooms/`. See media/README.md.
"""
