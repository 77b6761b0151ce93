"""Image health on sampled keyframes: brightness, sharpness and change between samples, and a JPEG snapshot.

`analysis` holds the pure measures and verdicts (calibrated on the simulator's picture, thresholds in
`config.HealthConfig`); `monitor.ImageHealth` is the recorder's `on_keyframe` hook: it decodes only the sampled
keyframe (a fresh decoder given the stream's extradata), in a worker thread, at most every `interval_s` per camera;
`routes` serves the latest snapshot (GET /api/cameras/{camera}/snapshot, bearer token).
"""
