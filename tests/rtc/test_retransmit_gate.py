"""The retransmission gate: a NACKed packet goes again once per round trip, a few times in all, within a share of
the stream's own rate; a reused history slot starts afresh."""

from __future__ import annotations

from rtc.retransmit_gate import RetransmitGate, RetransmitTotals


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def packet(n: int, size: int = 1200) -> bytes:
    return n.to_bytes(4, "big") + bytes(size - 4)


def test_a_packet_asked_for_again_within_a_round_trip_is_not_sent_twice() -> None:
    clock = Clock()
    totals = RetransmitTotals()
    gate = RetransmitGate(8, clock=clock, min_interval=0.02, totals=totals)
    p = packet(1)
    assert gate.allow(1, p, len(p), rtt=0.05, sent=0)
    clock.now += 0.049
    assert not gate.allow(1, p, len(p), rtt=0.05, sent=0)
    clock.now += 0.002
    assert gate.allow(1, p, len(p), rtt=0.05, sent=0)
    assert (totals.resent, totals.refused) == (2, 1)


def test_the_interval_is_at_least_the_floor_and_the_default_rtt_until_one_is_measured() -> None:
    clock = Clock()
    gate = RetransmitGate(8, clock=clock, min_interval=0.02, default_rtt=0.1)
    p, q = packet(1), packet(2)
    assert gate.allow(1, p, len(p), rtt=None, sent=0)
    clock.now += 0.05
    assert not gate.allow(1, p, len(p), rtt=None, sent=0), "no RTT yet: 100 ms"
    assert gate.allow(2, q, len(q), rtt=0.0005, sent=0)
    clock.now += 0.01
    assert not gate.allow(2, q, len(q), rtt=0.0005, sent=0), "a loopback RTT: still 20 ms apart"
    clock.now += 0.011
    assert gate.allow(2, q, len(q), rtt=0.0005, sent=0)


def test_a_packet_is_resent_a_few_times_at_most() -> None:
    clock = Clock()
    totals = RetransmitTotals()
    gate = RetransmitGate(8, clock=clock, max_resends=3, budget_floor=10**9, totals=totals)
    p = packet(1)
    answers = []
    for _ in range(10):
        answers.append(gate.allow(1, p, len(p), rtt=0.01, sent=0))
        clock.now += 0.05
    assert answers == [True, True, True] + [False] * 7
    assert (totals.resent, totals.refused) == (3, 7), "the node's metrics count them"


def test_a_reused_history_slot_starts_afresh() -> None:
    clock = Clock()
    gate = RetransmitGate(8, clock=clock, max_resends=1)
    held = packet(3)
    assert gate.allow(3, held, len(held), rtt=0.01, sent=0)
    clock.now += 1.0
    assert not gate.allow(3, held, len(held), rtt=0.01, sent=0)
    assert gate.allow(3, packet(11), len(packet(11)), rtt=0.01, sent=0), "the slot now holds packet 11"


def test_resends_stay_within_a_share_of_what_the_stream_sends() -> None:
    clock = Clock()
    totals = RetransmitTotals()
    gate = RetransmitGate(1024, clock=clock, budget_share=0.5, budget_floor=12_000, window=1.0, totals=totals)
    # The first window has only the floor: ten packets of 1,200 bytes.
    first = [gate.allow(i, packet(i), len(packet(i)), rtt=0.01, sent=0) for i in range(20)]
    assert first.count(True) == 10
    # The stream then sends 1.2 MB in a second: the next window allows 600 kB of resends, 500 packets.
    clock.now += 1.0
    second = [gate.allow(100 + i, packet(100 + i), len(packet(100 + i)), rtt=0.01, sent=1_200_000) for i in range(600)]
    assert second.count(True) == 500
    assert totals.refused == 10 + 100
    # A quiet second after it: back to the floor.
    clock.now += 1.0
    third = [gate.allow(800 + i, packet(800 + i), len(packet(800 + i)), rtt=0.01, sent=1_200_000) for i in range(20)]
    assert third.count(True) == 10


def test_a_burst_in_the_current_window_raises_its_budget() -> None:
    """A subscriber's start is a burst (the GOP cache at 20 Mbit/s) and its losses come with it: the first window
    counts what it sent so far, not only the floor."""
    clock = Clock()
    gate = RetransmitGate(1024, clock=clock, budget_share=0.5, budget_floor=12_000)
    clock.now += 0.1
    burst = [gate.allow(i, p := packet(i), len(p), rtt=0.01, sent=480_000) for i in range(300)]
    assert burst.count(True) == 200, "half of 480 kB: 200 packets of 1,200 bytes"
