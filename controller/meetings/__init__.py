"""Meetings seen from the controller: which session a join link opens and when, placing it on a media node, and
the short-lived meeting token and ICE servers the page gets for that node. See controller/README.md, "Meetings".
The meeting itself (signalling, media) runs on the media node (`media.rooms`)."""
