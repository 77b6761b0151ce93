"""The media node (aiortc): meeting rooms and camera relays that forward encoded media.

Not built yet: it arrives with the meetings issue (#5) and the parent live view issue (#6). This package exists
so the repository has the layout of shared/docs/architecture.md from the start; it has no entry point yet.
"""
