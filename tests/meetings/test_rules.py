"""The room's rules without media: roles, host actions, class mode, slots, speakers, the token bucket."""

from __future__ import annotations

import pytest

from common.clock import ManualClock
from common.ratelimit import TokenBucket
from media.rooms.room import MeetingRoom, Refused
from media.rooms.selection import wanted_audio, wanted_video
from media.rooms.slots import Feed, assign
from media.rooms.speakers import SpeakerTracker
from protocol.media import MeetingRole
from protocol.meeting import CloseReason, Codec, HostAction, HostCommand, MediaState, Muted, RoleChanged, Source

MIC, CAM, SCREEN = Source.MICROPHONE, Source.CAMERA, Source.SCREEN


def room(class_mode: bool = False) -> MeetingRoom:
    return MeetingRoom("meet-1-1", class_mode=class_mode, codec=Codec.VP8)


def test_students_join_muted_raise_hands_and_are_allowed_to_speak() -> None:
    r = room(class_mode=True)
    host = r.admit("join:h", "Cô Lan", MeetingRole.HOST)
    student = r.admit("join:s", "Lớp 5A", MeetingRole.PARTICIPANT)
    assert student.role is MeetingRole.STUDENT and student.muted_by_host and not r.forwards_audio(student)
    r.hand(student, True)
    assert [p.hand for p in r.roster_for(host).participants] == [False, True]
    outcome = r.act(host, HostCommand(action=HostAction.ALLOW_SPEAK, target=student.id))
    assert (student.id, Muted(muted=False)) in outcome.messages and outcome.audio_gates
    assert r.forwards_audio(student) and not student.hand
    with pytest.raises(Refused):  # students do not share screens in a class
        r.media_state(student, MediaState(microphone=True, camera=True, screen=True))


def test_observers_send_nothing_and_only_hosts_see_them() -> None:
    r = room(class_mode=True)
    host = r.admit("join:h", "Host", MeetingRole.HOST)
    student = r.admit("join:s", "Student", MeetingRole.PARTICIPANT)
    observer = r.admit("join:o", "Dự giờ", MeetingRole.OBSERVER)
    assert not observer.may_publish and not r.forwards_audio(observer)
    with pytest.raises(Refused):
        r.media_state(observer, MediaState(microphone=True, camera=False))
    with pytest.raises(Refused):
        r.hand(observer, True)
    assert observer.id in [p.id for p in r.roster_for(host).participants]
    assert observer.id not in [p.id for p in r.roster_for(student).participants]
    assert [p.id for p in r.roster_for(observer).participants] == [host.id, student.id, observer.id]
    assert observer not in r.publishers()


def test_host_actions_and_who_may_take_them() -> None:
    r = room()
    host = r.admit("join:h", "Host", MeetingRole.HOST)
    a = r.admit("join:a", "A", MeetingRole.PARTICIPANT)
    b = r.admit("join:b", "B", MeetingRole.PARTICIPANT)
    with pytest.raises(Refused) as refused:
        r.act(a, HostCommand(action=HostAction.MUTE, target=b.id))
    assert refused.value.reason == "not_host"
    with pytest.raises(Refused):
        r.act(host, HostCommand(action=HostAction.MUTE, target="nobody"))
    assert r.act(host, HostCommand(action=HostAction.MUTE, target=a.id)).audio_gates and not r.forwards_audio(a)
    outcome = r.act(host, HostCommand(action=HostAction.MUTE_ALL))
    assert [m for m in outcome.messages] == [(b.id, Muted(muted=True))] and r.forwards_audio(host)
    promoted = r.act(host, HostCommand(action=HostAction.PROMOTE, target=a.id))
    assert a.role is MeetingRole.PRESENTER and (a.id, RoleChanged(role=MeetingRole.PRESENTER)) in promoted.messages
    assert r.forwards_audio(a)
    removed = r.act(host, HostCommand(action=HostAction.REMOVE, target=b.id))
    assert removed.close == [(b.id, CloseReason.REMOVED)]
    r.leave(b.id)
    with pytest.raises(Refused) as again:  # the same join link cannot come back
        r.admit("join:b", "B", MeetingRole.PARTICIPANT)
    assert again.value.reason == CloseReason.REMOVED
    r.act(host, HostCommand(action=HostAction.LOCK))
    with pytest.raises(Refused) as locked:
        r.admit("join:c", "C", MeetingRole.PARTICIPANT)
    assert locked.value.reason == CloseReason.LOCKED
    r.admit("join:h2", "Co-host", MeetingRole.HOST)  # hosts still enter
    ended = r.act(host, HostCommand(action=HostAction.END))
    assert ended.ended and {member for member, _ in ended.close} == set(r.members)
    with pytest.raises(Refused):
        r.admit("join:d", "D", MeetingRole.HOST)


def test_slots_keep_their_feed_reuse_free_ones_and_only_grow() -> None:
    a, b, c, d = (("a", CAM), ("b", CAM), ("c", CAM), ("d", CAM))
    slots = assign([], [a, b], 2)
    assert slots == [a, b]
    slots = assign(slots, [c, a, b], 2)  # c speaks: it takes b's slot, a stays where it is
    assert slots == [a, c]
    slots = assign(slots, [d], 2)
    assert slots == [d, None]
    grown: list[Feed | None] = assign([None], [a, b, c], 5)
    assert grown == [a, b, c]


def test_video_goes_to_screens_first_then_the_most_recent_speakers() -> None:
    r = room()
    members = [r.admit(f"join:{n}", n, MeetingRole.PARTICIPANT) for n in "abcd"]
    viewer = members[0]
    for m in members:
        m.microphone = m.camera = True
    members[3].screen = True
    live = {(m.id, s) for m in members for s in (MIC, CAM)} | {(members[3].id, SCREEN)}
    speakers = SpeakerTracker()
    for _ in range(10):
        speakers.observe(members[2].id, 20, now=5.0)
    speakers.observe(members[1].id, 127, now=5.0)
    video = wanted_video(r, viewer, live, speakers)
    assert video[:2] == [(members[3].id, SCREEN), (members[2].id, CAM)]
    assert (viewer.id, CAM) not in video
    members[1].muted_by_host = True
    assert wanted_audio(r, viewer, live) == [(members[2].id, MIC), (members[3].id, MIC)]
    assert speakers.speaking(5.5) == [members[2].id] and speakers.speaking(7.0) == []


async def test_token_bucket_refuses_a_flood_and_refills() -> None:
    clock = ManualClock()
    bucket = TokenBucket(clock, rate=10, burst=5)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    await clock.advance(0.1)
    assert bucket.take() and not bucket.take()
