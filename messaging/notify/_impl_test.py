"""oslo.messaging's module path of the test driver's capture list, for code that imports it."""

from messaging.notify.drivers.capture import NOTIFICATIONS, TestDriver, reset

__all__ = ["NOTIFICATIONS", "TestDriver", "reset"]
