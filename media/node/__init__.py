"""The media node service: HTTP routes (WHIP, WHEP, control, /metrics), tokens, load reports, and the extensions
that carry media (camera relays in `liveview`, meeting rooms in `media.rooms`). See media/README.md."""
