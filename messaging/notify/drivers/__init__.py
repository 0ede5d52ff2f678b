"""Notification drivers, loaded by name from the ``messaging.notify.drivers`` entry points."""
