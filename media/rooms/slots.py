"""Which publisher each of a subscriber's m-lines ("slots") carries, changed with as little churn as possible.

A subscriber's connection has one audio slot per other publisher ("audio from all") and at most `max_video`
video slots. Slots are only ever added (aiortc cannot take an m-line away), and are re-pointed in place when the
wanted set changes: a slot keeps its publisher while that publisher is still wanted, freed slots take the
newcomers, and new slots are opened only when no free one is left. Re-pointing needs no renegotiation; opening a
slot does.
"""

from __future__ import annotations

from protocol.meeting import Source

Feed = tuple[str, Source]
"""(participant id, source)."""


def assign(current: list[Feed | None], wanted: list[Feed], limit: int) -> list[Feed | None]:
    """The new slot list: `current` re-pointed to carry `wanted` (in priority order, at most `limit` of them).

    The result is at least as long as `current` (slots are never removed); it grows only when the wanted feeds
    do not fit in the existing slots.
    """
    chosen = wanted[:limit]
    keep = set(chosen)
    slots: list[Feed | None] = [feed if feed in keep else None for feed in current]
    placed = {feed for feed in slots if feed is not None}
    for feed in chosen:
        if feed in placed:
            continue
        try:
            slots[slots.index(None)] = feed
        except ValueError:
            slots.append(feed)
        placed.add(feed)
    return slots
