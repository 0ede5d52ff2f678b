"""Cumulative (``client`` mode) acknowledgements that never cover an unsettled message."""

from __future__ import annotations

from messaging.drivers.stomp.acks import AckLedger


class Message:
    def __init__(self, name: str) -> None:
        self.name = name


def test_each_message_is_acknowledged_when_settled_in_order() -> None:
    ledger: AckLedger[Message] = AckLedger()
    first, second = Message("1"), Message("2")
    ledger.received(first)
    ledger.received(second)
    assert ledger.settle(first) is first
    assert ledger.settle(second) is second
    assert len(ledger) == 0


def test_a_later_message_waits_for_the_earlier_ones() -> None:
    ledger: AckLedger[Message] = AckLedger()
    one, two, three = Message("1"), Message("2"), Message("3")
    for message in (one, two, three):
        ledger.received(message)
    assert ledger.settle(three) is None
    assert ledger.settle(two) is None
    assert len(ledger) == 3
    # Settling the first acknowledges all three with one ACK of the last.
    assert ledger.settle(one) is three
    assert len(ledger) == 0


def test_a_message_not_in_the_ledger_is_ignored() -> None:
    ledger: AckLedger[Message] = AckLedger()
    kept = Message("kept")
    ledger.received(kept)
    assert ledger.settle(Message("stranger")) is None
    assert len(ledger) == 1
