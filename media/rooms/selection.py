"""What each subscriber should receive: audio from every publisher that is heard, video from at most N of them.

Video priority: screen shares first (a presentation must be seen), then cameras by how recently their owner spoke
(`SpeakerTracker.order`), then join order. Nobody receives their own media; observers publish nothing.
"""

from __future__ import annotations

from collections.abc import Collection

from media.rooms.room import MeetingRoom, Member
from media.rooms.slots import Feed
from media.rooms.speakers import SpeakerTracker
from protocol.meeting import Source


def wanted_audio(room: MeetingRoom, viewer: Member, live: Collection[Feed]) -> list[Feed]:
    feeds = []
    for member in room.publishers():
        feed = (member.id, Source.MICROPHONE)
        if member.id != viewer.id and feed in live and member.microphone and room.forwards_audio(member):
            feeds.append(feed)
    return feeds


def wanted_video(room: MeetingRoom, viewer: Member, live: Collection[Feed], speakers: SpeakerTracker) -> list[Feed]:
    others = [m for m in room.publishers() if m.id != viewer.id]
    screens = [(m.id, Source.SCREEN) for m in others if m.screen and (m.id, Source.SCREEN) in live]
    ranked = speakers.order([m.id for m in others])
    by_id = {m.id: m for m in others}
    cameras = [(pid, Source.CAMERA) for pid in ranked if by_id[pid].camera and (pid, Source.CAMERA) in live]
    return screens + cameras
