"""Which NACKed packets a sender sends again: each at most once per round trip, a few times in all, within a share
of what the stream itself sends.

A receiver's NACK names every packet it still misses. aiortc's receivers (and some others) send the whole missing
list again each time they notice a new gap, so under loss the same packets are asked for over and over. Answering
every request turns a receiver that falls behind into more traffic towards it, and the node into a retransmitter
that spends its CPU on copies that arrive too late: a congestion collapse. Browsers pace their own NACKs, but the
node must not depend on that.

A packet is sent again when:
- it has not been resent within the last round trip (the sender's measured RTT, at least `min_interval`, and
  `default_rtt` until one is measured): a copy already on its way answers the repeated request;
- it has been resent fewer than `max_resends` times;
- the resends of the current one-second window stay within `budget_share` of the bytes the stream sent in the
  previous window or so far in this one (and at least `budget_floor` bytes).

The per-packet state is keyed by the packet object in the sender's history, so a history slot that is reused
starts afresh without any work on the send path. The stream's rate comes from the octet count the sender keeps for
its reports anyway (`allow(..., sent=)`), so the gate adds nothing per packet sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class RetransmitTotals:
    """What every gate of the process let through and held back, since it started (for the node's metrics)."""

    resent: int = 0
    refused: int = 0


TOTALS = RetransmitTotals()


class RetransmitGate:
    def __init__(
        self,
        slots: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.02,
        default_rtt: float = 0.1,
        max_resends: int = 3,
        budget_share: float = 0.5,
        budget_floor: int = 48_000,
        window: float = 1.0,
        totals: RetransmitTotals = TOTALS,
    ) -> None:
        self._clock = clock
        self._totals = totals
        self._min_interval = min_interval
        self._default_rtt = default_rtt
        self._max_resends = max_resends
        self._budget_share = budget_share
        self._budget_floor = budget_floor
        self._window = window
        self._resends: list[tuple[object, int, float] | None] = [None] * slots
        """Per history slot: (the packet, times resent, when last resent)."""
        self._window_start = clock()
        self._sent_at_window_start = 0
        self._budget = budget_floor
        self._spent = 0

    def allow(self, slot: int, packet: object, size: int, *, rtt: float | None, sent: int) -> bool:
        """Whether to resend `packet` (`size` bytes, held in history slot `slot`) now, the stream having sent
        `sent` octets of media so far; counts it as resent when so."""
        now = self._clock()
        if now - self._window_start >= self._window:
            self._roll(now, sent)
        entry = self._resends[slot]
        count, last = (entry[1], entry[2]) if entry is not None and entry[0] is packet else (0, float("-inf"))
        interval = max(self._min_interval, self._default_rtt if rtt is None else rtt)
        # What this window sent so far counts too: a subscriber's start (a GOP cache burst) is when losses come.
        budget = max(self._budget, int(self._budget_share * (sent - self._sent_at_window_start)))
        if count >= self._max_resends or now - last < interval or self._spent + size > budget:
            self._totals.refused += 1
            return False
        self._resends[slot] = (packet, count + 1, now)
        self._spent += size
        self._totals.resent += 1
        return True

    def _roll(self, now: float, sent: int) -> None:
        """A new window: its budget is a share of what the stream sent since the last one began."""
        rate = (sent - self._sent_at_window_start) / (now - self._window_start)
        self._budget = max(self._budget_floor, int(self._budget_share * rate * self._window))
        self._window_start = now
        self._sent_at_window_start = sent
        self._spent = 0
