"""Recording: each ready camera's main stream remuxed (never decoded) into crash-safe fragmented MP4 segments.

`RecordingSupervisor` (supervisor.py) owns one `Recorder` per camera; each recorder's RTSP session runs in a
thread of its own (session.py) and writes segments (segment.py) that the `SegmentIndex` (index.py) lists. At
start, `reconcile` (reconcile.py) makes the index and the disk agree. The local HTTP API (api.py) lists
segments and gaps and exports clips (export.py).
"""
