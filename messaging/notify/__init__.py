"""Notifications: the Notifier, its drivers, and notification listeners."""

from messaging.notify.dispatcher import NotificationResult
from messaging.notify.filter import NotificationFilter
from messaging.notify.listener import get_batch_notification_listener, get_notification_listener
from messaging.notify.log_handler import LoggingErrorNotificationHandler, PublishErrorsHandler
from messaging.notify.logger import LoggingNotificationHandler
from messaging.notify.notifier import Notifier
from messaging.transport import get_notification_transport

__all__ = [
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
]
