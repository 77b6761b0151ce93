"""Recording: each ready camera's main stream remuxed (never decoded) into crash-safe fragmented MP4 segments.

`RecordingSupervisor` (supervisor.py) owns one `Recorder` (recorder.py) per stream; each recorder runs its RTSP
sessions one after another, with backoff between them, and writes segments that the `SegmentIndex` (index.py,
its own `<state_dir>/recordings.db`) lists. Over TCP (the default) a session runs on the event loop (native.py):
our RTSP client (rtsp_client.py), depacketizer (depacketize.py), parameter sets (h26x.py) and fragmented MP4
written by hand (fmp4.py), a fragment at a time, by the supervisor's writer threads (writers.py, fragfile.py);
no library call and no thread hand-off per packet. Over UDP a session is PyAV's (session.py, segment.py), in a
thread of its own. At start,
`reconcile` (reconcile.py) makes the index and the disk agree. The agent's local HTTP API (api.py, on the
agent's health port, bearer token from token.py) lists segments and gaps and exports clips (export.py);
runtime.py wires all of it into the agent.

Decisions, in short:
- Camera ids are the uuid of the endpoint reference (the `camera` label of /metrics, the keys of retention's
  per-camera days); a recorded sub-stream is `<uuid>.sub`. Files: `<root>/<camera>/<YYYY-MM-DD>/<start>.mp4`.
- Segments start on a keyframe and are cut at the first keyframe after `segment_s`; fragments are cut at every
  keyframe and at `fragment_s`, flushed to the kernel when made and fdatasynced once per `fragment_s`.
- Segment times come from the agent's clocks (wall time read once per connection, then monotonic time), never
  from the camera's; they never go backwards (timeline.py). Gaps are recorded with a reason: `stall`, `drop`,
  `error`, `open_failed`, `write_error` (the session that ended), `not_recording` (the agent or the recorder
  was stopped), `clock_drift` (a camera clock running slow by more than `max_drift_s`).
- A stall is no frame for `stall_timeout_s` (at most 10 s) on an open connection. Over UDP it is FFmpeg's socket
  timeout, and stopping a stalled session takes at most that long (PyAV cannot abort a blocked read).
- Only H.264 and H.265 are recorded over TCP (what ONVIF cameras stream); B-frames are not expected (RTP carries
  presentation times only, and the files are written with decode time = presentation time).
"""
