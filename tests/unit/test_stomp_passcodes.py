"""stomp.py's DEBUG log of the frames it sends shows no password (the driver's logger filter)."""

from __future__ import annotations

import logging

import pytest
from stomp.utils import clean_lines  # type: ignore[import-untyped]

from messaging.drivers.stomp.connection import PasscodeFilter


@pytest.fixture
def stomp_log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, "stomp.py")
    return logging.getLogger("stomp.py")


def test_the_passcode_header_is_masked_whatever_the_password(
    stomp_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    frame = [b"CONNECT\n", b"login:alice\n", b"passcode:an0ther one\n", b"host:h\n", b"\n"]
    stomp_log.debug("sending frame: %s", clean_lines(frame))  # stomp.py's own call
    assert "an0ther" not in caplog.text
    assert "passcode:****" in caplog.text
    assert "login:alice" in caplog.text and "host:h" in caplog.text


def test_a_known_password_is_masked_in_every_form(
    stomp_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    masking = PasscodeFilter()
    masking.add("pa:ss\\word")
    masking.add("ab")  # too short to mask safely: ignored
    stomp_log.addFilter(masking)
    try:
        stomp_log.debug("raw %s", "pa:ss\\word")
        stomp_log.debug("escaped as STOMP does %s", "pa\\css\\\\word")
        stomp_log.debug("in a repr %r", b"pa:ss\\word")
        stomp_log.debug("ab stays")
    finally:
        stomp_log.removeFilter(masking)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["raw ****", "escaped as STOMP does ****", "in a repr b'****'", "ab stays"]
