"""A meeting room's people and rules, without media: who is in, what each role may do, what host actions change.

Kept apart from the peer connections (`media.rooms.session`) so the rules are plain, synchronous and tested on
their own. Every change returns an `Outcome` saying whom to tell what and whom to disconnect; the session layer
carries it out.

Roles (protocol.media.MeetingRole):
- host: every host action; publishes; shares a screen;
- presenter: publishes and shares a screen;
- participant: publishes; shares a screen outside class mode;
- student (class mode): publishes, but joins muted by the host (no microphone forwarded) until allowed;
  raises a hand;
- observer: receives only (no publish connection at all) and is hidden from everyone's list but the hosts'.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field

from protocol.media import MeetingRole
from protocol.meeting import (
    RESUME_S,
    TARGETED,
    CloseReason,
    Codec,
    HostAction,
    HostCommand,
    MediaState,
    Muted,
    Person,
    RoleChanged,
    Roster,
    ServerMessage,
)


class Refused(Exception):
    """A join or an action that is not allowed; `reason` says why (a CloseReason for joins, a code for actions)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Member:
    id: str
    subject: str
    name: str
    role: MeetingRole
    order: int
    muted_by_host: bool = False
    microphone: bool = False
    camera: bool = False
    screen: bool = False
    hand: bool = False
    resume: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    """The key a rejoin presents to come back as this member (`Hello.resume`)."""

    @property
    def may_publish(self) -> bool:
        return self.role is not MeetingRole.OBSERVER

    @property
    def is_host(self) -> bool:
        return self.role is MeetingRole.HOST

    def person(self) -> Person:
        return Person(
            id=self.id, name=self.name, role=self.role, microphone=self.microphone, camera=self.camera,
            screen=self.screen, hand=self.hand, muted_by_host=self.muted_by_host,
        )  # fmt: skip


@dataclass
class Outcome:
    """What a change means for the connections: messages to members, members to close, what to rebroadcast."""

    messages: list[tuple[str, ServerMessage]] = field(default_factory=list)
    close: list[tuple[str, CloseReason]] = field(default_factory=list)
    roster: bool = False
    audio_gates: bool = False
    """Whose microphone is forwarded changed (a mute or an allow)."""
    ended: bool = False


class MeetingRoom:
    def __init__(self, name: str, *, class_mode: bool, codec: Codec, max_participants: int = 300) -> None:
        self.name = name
        self.class_mode = class_mode
        self.codec = codec
        self.max_participants = max_participants
        self.locked = False
        self.ended = False
        self.members: dict[str, Member] = {}
        self._banned: set[str] = set()
        self._away: dict[str, tuple[Member, float]] = {}
        """Members whose connection dropped, by resume key, with the monotonic time their chance to resume ends."""
        self._order = itertools.count()

    # ----- membership -----

    def admit(
        self, subject: str, name: str, role: MeetingRole, *, resume: str | None = None, now: float = 0.0
    ) -> Member:
        """A new member, or with the `resume` key of a member who dropped within `RESUME_S` (and the same link),
        that member again: its id, role, host mute and hand kept, and let in even if the room was locked since."""
        if self.ended:
            raise Refused(CloseReason.ENDED, "the meeting has ended")
        if subject in self._banned:
            raise Refused(CloseReason.REMOVED, "you were removed from this meeting")
        self._forget_expired(now)
        away = self._away.get(resume or "")
        if away is not None and away[0].subject == subject:
            del self._away[away[0].resume]
            member = away[0]
            self.members[member.id] = member
            return member
        if self.locked and role is not MeetingRole.HOST:
            raise Refused(CloseReason.LOCKED, "the host has locked the meeting")
        if len(self.members) >= self.max_participants:
            raise Refused(CloseReason.FULL, "the meeting is full")
        if self.class_mode and role is MeetingRole.PARTICIPANT:
            role = MeetingRole.STUDENT
        member = Member(
            id=secrets.token_urlsafe(6), subject=subject, name=name or role.value, role=role,
            order=next(self._order), muted_by_host=role is MeetingRole.STUDENT,
        )  # fmt: skip
        self.members[member.id] = member
        return member

    def leave(self, member_id: str, *, resumable: bool = False, now: float = 0.0) -> Outcome:
        """Out of the roster; with `resumable` (the connection dropped or was replaced, nobody asked to leave) kept
        for `RESUME_S` so that a rejoin with its key comes back as the same member."""
        gone = self.members.pop(member_id, None)
        if gone is not None and resumable:
            self._forget_expired(now)
            gone.microphone = gone.camera = gone.screen = False  # what it publishes starts again with its offer
            self._away[gone.resume] = (gone, now + RESUME_S)
        return Outcome(roster=gone is not None)

    def is_away(self, resume: str) -> bool:
        return resume in self._away

    def present_by_resume(self, resume: str | None, subject: str) -> Member | None:
        """The member still present with this resume key and link (a rejoin while its old connection looks open)."""
        if not resume:
            return None
        return next((m for m in self.members.values() if m.resume == resume and m.subject == subject), None)

    def _forget_expired(self, now: float) -> None:
        for key, (_, until) in list(self._away.items()):
            if until <= now:
                del self._away[key]

    def forwards_audio(self, member: Member) -> bool:
        """Whether the node forwards this member's microphone: never an observer's nor a host-muted one's."""
        return member.may_publish and not member.muted_by_host

    def may_share_screen(self, member: Member) -> bool:
        if not member.may_publish:
            return False
        if self.class_mode:
            return member.role in (MeetingRole.HOST, MeetingRole.PRESENTER)
        return True

    # ----- what the participant says about itself -----

    def media_state(self, member: Member, state: MediaState) -> Outcome:
        if not member.may_publish:
            raise Refused("not_allowed", "observers send nothing")
        if state.screen and not self.may_share_screen(member):
            raise Refused("not_allowed", "only the host and presenters share a screen in a class")
        member.microphone, member.camera, member.screen = state.microphone, state.camera, state.screen
        return Outcome(roster=True)

    def hand(self, member: Member, raised: bool) -> Outcome:
        if not member.may_publish:
            raise Refused("not_allowed", "observers do not raise hands")
        member.hand = raised
        return Outcome(roster=True)

    # ----- host actions -----

    def act(self, actor: Member, command: HostCommand) -> Outcome:
        if not actor.is_host:
            raise Refused("not_host", "only a host does this")
        target: Member | None = None
        if command.action in TARGETED:
            target = self.members.get(command.target or "")
            if target is None:
                raise Refused("no_target", "no such participant in this meeting")
        outcome = Outcome(roster=True)
        match command.action:
            case HostAction.MUTE:
                assert target is not None
                self._mute(target, outcome)
            case HostAction.ALLOW_SPEAK:
                assert target is not None
                if target.muted_by_host:
                    target.muted_by_host = False
                    target.hand = False
                    outcome.messages.append((target.id, Muted(muted=False)))
                    outcome.audio_gates = True
            case HostAction.REMOVE:
                assert target is not None
                if target.id == actor.id:
                    raise Refused("not_allowed", "a host leaves rather than removing themselves")
                self._banned.add(target.subject)
                self._away = {k: (m, t) for k, (m, t) in self._away.items() if m.subject != target.subject}
                outcome.close.append((target.id, CloseReason.REMOVED))
            case HostAction.PROMOTE:
                assert target is not None
                if not target.may_publish:
                    raise Refused("not_allowed", "an observer cannot present")
                if target.role is not MeetingRole.HOST:
                    target.role = MeetingRole.PRESENTER
                    if target.muted_by_host:
                        target.muted_by_host = False
                        outcome.messages.append((target.id, Muted(muted=False)))
                        outcome.audio_gates = True
                    outcome.messages.append((target.id, RoleChanged(role=target.role)))
            case HostAction.MUTE_ALL:
                for member in self.members.values():
                    if member.id != actor.id and not member.is_host:
                        self._mute(member, outcome)
            case HostAction.LOCK:
                self.locked = True
            case HostAction.UNLOCK:
                self.locked = False
            case HostAction.END:
                self.ended = True
                outcome.ended = True
                outcome.close.extend((member_id, CloseReason.ENDED) for member_id in self.members)
        return outcome

    def _mute(self, target: Member, outcome: Outcome) -> None:
        if target.may_publish and not target.muted_by_host:
            target.muted_by_host = True
            outcome.messages.append((target.id, Muted(muted=True)))
            outcome.audio_gates = True

    # ----- views -----

    def roster_for(self, viewer: Member) -> Roster:
        """Everyone present in join order; observers only in a host's list (hidden from the class's grid)."""
        people = [
            member.person()
            for member in sorted(self.members.values(), key=lambda m: m.order)
            if member.role is not MeetingRole.OBSERVER or viewer.is_host or member.id == viewer.id
        ]
        return Roster(participants=people, locked=self.locked)

    def publishers(self) -> list[Member]:
        return sorted((m for m in self.members.values() if m.may_publish), key=lambda m: m.order)
