"""The recorder's `on_keyframe` hook: sample a keyframe now and then, judge it in a worker thread, keep a snapshot.

`on_keyframe` returns at once: it decides whether this camera is due (at most one sample every `interval_s`, one
in flight at a time), and hands the keyframe (its bytes, the codec and the decoder configuration) to a thread
pool. The worker decodes that one packet with a fresh decoder (no full decode of the stream), measures it, updates
the camera's figures under a lock, and replaces the camera's JPEG snapshot atomically. Nothing runs in the event
loop, and nothing in the worker touches it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.codeccontext import VideoCodecContext

from agents.health.analysis import Grey, Measures, change, judge, measure
from agents.health.config import HealthConfig
from agents.recording.hooks import Keyframe
from common.clock import Clock, SystemClock
from common.files import write_atomically

logger = logging.getLogger(__name__)

EARLY_TOLERANCE_S = 0.5
"""A keyframe this much before the interval is over still counts as due: network jitter must not push every
sample to the next keyframe (with a 2 s GOP and a 10 s interval, samples stay 10 s apart, not 12)."""
_SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,127}")
_DECODE_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, ValueError)
_PLANAR_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})


@dataclass(frozen=True)
class ImageFigures:
    """One camera's image health as of its latest sample (what /metrics shows)."""

    brightness: float | None = None
    contrast: float | None = None
    sharpness: float | None = None
    change: float | None = None
    """Between the latest two samples; None until there are two."""
    dark: bool = False
    blurred: bool = False
    frozen: bool = False
    samples_total: int = 0
    errors_total: int = 0
    """Keyframes that could not be decoded or measured."""
    sampled_at: datetime | None = None


@dataclass
class _Camera:
    figures: ImageFigures = field(default_factory=ImageFigures)
    last_due: float | None = None
    snapshot_at: float | None = None
    busy: bool = False
    thumb: Grey | None = None
    changes: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=100))


class ImageHealth:
    """Per-camera image health from sampled keyframes; `close()` stops the workers."""

    def __init__(self, config: HealthConfig, snapshot_dir: Path | None = None, *, clock: Clock | None = None) -> None:
        self.config = config
        self.snapshot_dir = snapshot_dir
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._cameras: dict[str, _Camera] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="image-health"
        )
        self._closed = False

    def close(self) -> None:
        """Stop taking samples; wait for the one being measured (a few milliseconds)."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------------------------------------------------

    def on_keyframe(self, camera: str, keyframe: Keyframe) -> None:
        """The recorder saw a keyframe of `camera`: sample it if due. Never blocks, never raises."""
        if not self.config.enabled or self._closed:
            return
        now = self._clock.monotonic()
        with self._lock:
            state = self._cameras.setdefault(camera, _Camera())
            if state.busy:
                return
            interval = self.config.interval_s
            if state.last_due is not None and now - state.last_due < interval - min(EARLY_TOLERANCE_S, interval / 4):
                return
            state.busy = True
            state.last_due = now
        try:
            self._executor.submit(self._sample, camera, keyframe.codec, keyframe.extradata, keyframe.data)
        except Exception:
            logger.debug("%s: cannot take a keyframe sample", camera, exc_info=True)
            with self._lock:
                state.busy = False

    def figures(self) -> dict[str, ImageFigures]:
        """Every camera's latest figures (a copy, safe to read from any thread)."""
        with self._lock:
            return {camera: state.figures for camera, state in self._cameras.items()}

    def snapshot_path(self, camera: str) -> Path | None:
        """Where the camera's latest JPEG is (it may not exist yet), or None without a snapshot directory."""
        if self.snapshot_dir is None:
            return None
        return self.snapshot_dir / f"{snapshot_name(camera)}.jpg"

    def snapshot(self, camera: str) -> bytes | None:
        """The camera's latest JPEG, or None (blocking file read: call it in a thread from async code)."""
        path = self.snapshot_path(camera)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------------------------------------------------
    # In the worker thread

    def _sample(self, camera: str, codec: str, extradata: bytes, data: bytes) -> None:
        try:
            frame = decode_keyframe(codec, extradata, data)
            measures = measure(luma(frame), self.config.analysis_width)
        except _DECODE_ERRORS as exc:
            logger.debug("%s: keyframe sample not decodable: %s", camera, exc)
            with self._lock:
                state = self._cameras[camera]
                state.figures = replace(state.figures, errors_total=state.figures.errors_total + 1)
                state.busy = False
            return
        except Exception:
            logger.exception("%s: keyframe sample failed", camera)
            with self._lock:
                self._cameras[camera].busy = False
            return
        try:
            if self.snapshot_dir is not None and self._snapshot_due(camera):
                self._write_snapshot(camera, frame)
        except Exception:
            logger.exception("%s: cannot keep the snapshot", camera)
        try:
            self._record(camera, measures)
        except Exception:
            logger.exception("%s: cannot record the sample", camera)
            with self._lock:
                self._cameras[camera].busy = False

    def _record(self, camera: str, measures: Measures) -> None:
        """Publish the sample's figures and take the next one (one step, so a reader never sees one half)."""
        with self._lock:
            state = self._cameras[camera]
            state.busy = False
            last_change = None
            if state.thumb is not None:
                last_change = change(state.thumb, measures.thumb)
                state.changes.append(last_change)
            state.thumb = measures.thumb
            verdict = judge(measures, state.changes, self.config)
            old = state.figures
            state.figures = ImageFigures(
                brightness=measures.brightness,
                contrast=measures.contrast,
                sharpness=measures.sharpness,
                change=last_change,
                dark=verdict.dark,
                blurred=verdict.blurred,
                frozen=verdict.frozen,
                samples_total=old.samples_total + 1,
                errors_total=old.errors_total,
                sampled_at=self._clock.now(),
            )
        for name in ("dark", "blurred", "frozen"):
            if getattr(verdict, name) != getattr(old, name):
                logger.info("%s: image %s %s", camera, "now" if getattr(verdict, name) else "no longer", name)

    def _snapshot_due(self, camera: str) -> bool:
        """The first sample, then one every `snapshot_interval_s` (the JPEG costs as much as the measures)."""
        now = self._clock.monotonic()
        with self._lock:
            state = self._cameras[camera]
            if state.snapshot_at is not None and now - state.snapshot_at < self.config.snapshot_interval_s:
                return False
            state.snapshot_at = now
            return True

    def _write_snapshot(self, camera: str, frame: av.VideoFrame) -> None:
        path = self.snapshot_path(camera)
        assert path is not None
        bgr = frame.to_ndarray(format="bgr24")
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.config.snapshot_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        write_atomically(path, encoded.tobytes())


def luma(frame: av.VideoFrame) -> Grey:
    """The frame's luma plane as is (a view, no conversion) for planar YUV; converted to grey otherwise."""
    if frame.format.name in _PLANAR_YUV:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
        return rows[:, : frame.width]
    return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)


def decode_keyframe(codec: str, extradata: bytes, data: bytes) -> av.VideoFrame:
    """Decode one keyframe on its own: a new decoder given the stream's extradata (SPS/PPS), then flushed."""
    context = av.CodecContext.create(codec, "r")
    if not isinstance(context, VideoCodecContext):
        raise ValueError(f"{codec} is not a video codec")
    if extradata:
        context.extradata = extradata
    frames = list(context.decode(av.Packet(data)))
    frames += context.decode(None)
    if not frames:
        raise ValueError("the keyframe decoded to no picture")
    return frames[0]


def snapshot_name(camera: str) -> str:
    """A file name for the camera's snapshot: its id when that is a safe name, a hash of it otherwise."""
    if _SAFE_NAME.fullmatch(camera) and ".." not in camera:
        return camera.replace(":", "_")
    return hashlib.sha256(camera.encode("utf-8")).hexdigest()[:32]
