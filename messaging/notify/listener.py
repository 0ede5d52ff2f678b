"""Notification listeners: servers that hand received notifications to endpoints.

Each endpoint method named like a priority (``info``, ``error``...) receives the
notifications of that priority from every target. Listeners without a pool
share the default queue of each ``<topic>.<priority>`` (each notification goes
to one of them); each pool gets its own copy, shared among its members.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from messaging.conf import NOTIFICATIONS_GROUP, register_notification_opts
from messaging.delayed import DelayedCalls
from messaging.excerpt import excerpt, log_exception
from messaging.notify._impl_log import mask_secrets
from messaging.notify.dispatcher import (
    BatchNotificationDispatcher,
    NotificationDispatcher,
    NotificationResult,
    describe,
)
from messaging.poison import HandlingFailure, LocalAttempts, PoisonPolicy
from messaging.server import MessageHandlingServer
from messaging.transport import RPC_TRANSPORT_FOR_NOTIFICATIONS, RPCTransport

if TYPE_CHECKING:
    from messaging.drivers.base import IncomingMessage, Listener
    from messaging.serializer import Serializer
    from messaging.target import Target
    from messaging.transport import Transport

__all__ = [
    "BatchNotificationServer",
    "NotificationServer",
    "NotificationServerBase",
    "get_batch_notification_listener",
    "get_notification_listener",
]

LOG = logging.getLogger(__name__)


class NotificationServerBase(MessageHandlingServer):
    """What notification servers share: subscription to targets x priorities.

    Args:
        transport: the notification transport.
        targets: the targets (topic, optional exchange) to listen on.
        dispatcher: the notification dispatcher.
        executor: the executor name.
        allow_requeue: requeue notifications that endpoints could not handle.
        pool: the pool name; None shares the default queues.
        batch_size: how many notifications a poll may return.
        batch_timeout: how long to wait for a batch to fill.
        temporary_pool: the pool's queue goes away with the listener instead of
            collecting notifications while nobody listens.
    """

    dispatcher: NotificationDispatcher
    metrics_kind = "notification"

    def __init__(
        self,
        transport: Transport,
        targets: Sequence[Target],
        dispatcher: NotificationDispatcher,
        executor: str | None = None,
        allow_requeue: bool = True,
        pool: str | None = None,
        batch_size: int = 1,
        batch_timeout: float | None = None,
        *,
        temporary_pool: bool = False,
    ) -> None:
        super().__init__(transport, dispatcher, executor)
        register_notification_opts(self.conf)
        self._policy = PoisonPolicy.from_conf(self.conf, NOTIFICATIONS_GROUP)
        self._delayed = DelayedCalls(f"messaging-requeue-{id(self):x}", "A delayed requeue")
        self._local_attempts = LocalAttempts()
        if isinstance(transport, RPCTransport):
            LOG.warning(RPC_TRANSPORT_FOR_NOTIFICATIONS)
        self._allow_requeue = allow_requeue
        self._pool = pool
        self._temporary_pool = temporary_pool
        self.targets = list(targets)
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        self._targets_and_priorities = list(
            itertools.product(self.targets, dispatcher.supported_priorities)
        )

    def _health_name(self) -> str:
        topics = ", ".join(str(t.topic) for t in self.targets)
        pool = f" (pool {self._pool})" if self._pool else ""
        return f"notification listener on {topics}{pool}"

    def _create_listener(self) -> Listener:
        # Said at start, not when built: building logs only what oslo.messaging logs.
        if not self._targets_and_priorities:
            LOG.warning(
                "This notification listener subscribes to nothing: no endpoint has a method "
                "named like a priority (audit, debug, info, warn, error, critical, sample)"
            )
        return self.transport.listen_for_notifications(
            self._targets_and_priorities,
            self._pool,
            self._batch_size,
            self._batch_timeout,
            temporary=self._temporary_pool,
        )

    def _settle(
        self, message: IncomingMessage, requeue: bool, error: BaseException | None = None
    ) -> None:
        if not requeue:
            message.acknowledge()
            self._count_handled("ok")
            if message.previous_attempts is None:
                self._local_attempts.forget(message)
        elif self._allow_requeue:
            self._retry_or_park(message, error)
        else:
            LOG.error(
                "Notification %s was not handled and this listener does not allow requeue "
                "(allow_requeue=False): it is acknowledged and will not come again. Body: %s",
                describe(message),
                excerpt(mask_secrets(message.message), 1000),
            )
            message.acknowledge()
            self._count_handled("dropped")

    def _attempts(self, message: IncomingMessage) -> int:
        # Failed attempts so far: the transport's count, else this process's.
        if message.previous_attempts is not None:
            return message.previous_attempts
        return self._local_attempts.get(message)

    def _parked_unhandled(self, message: IncomingMessage) -> bool:
        """Park, unhandled, a notification delivered too often already (crashed handlers)."""
        if not self._allow_requeue:
            return False
        attempts = message.previous_attempts
        if attempts is None or attempts < self._policy.max_attempts:
            return False
        self._park(message, HandlingFailure.unsettled(attempts))
        return True

    def _retry_or_park(self, message: IncomingMessage, error: BaseException | None) -> None:
        attempt = self._attempts(message) + 1
        if attempt >= self._policy.max_attempts:
            self._park(message, HandlingFailure.of(error, attempt))
            return
        delay = self._policy.delay(attempt)
        LOG.warning(
            "Notification %s was not handled (attempt %d of %d); requeueing it in %.1f s",
            describe(message),
            attempt,
            self._policy.max_attempts,
            delay,
        )
        if message.previous_attempts is None:
            self._local_attempts.set(message, attempt)
        self._count_handled("requeued")
        self._delayed.call_later(delay, message.requeue)

    def _park(self, message: IncomingMessage, failure: HandlingFailure) -> None:
        self._local_attempts.forget(message)
        if message.park(failure):
            LOG.error("Parked notification %s: %s", describe(message), failure.summary())
            self._count_handled("parked")
            return
        # Nowhere to park it: it is logged whole, then acknowledged.
        LOG.error(
            "Notification %s failed: %s. This transport cannot park it: it is acknowledged "
            "and dropped. Body: %s\n%s",
            describe(message),
            failure.summary(),
            mask_secrets(message.message),
            failure.traceback,
        )
        message.acknowledge()
        self._count_handled("dropped")

    def _before_cleanup(self) -> None:
        dropped = self._delayed.stop()
        if dropped:
            LOG.info("%d notifications awaiting a requeue go back to the broker", dropped)

    def _after_start(self) -> None:
        self._delayed.restart()


class NotificationServer(NotificationServerBase):
    """A listener that hands notifications to endpoints one at a time."""

    def _process_incoming(self, incoming: list[IncomingMessage]) -> None:
        traced = self._tracing
        for message in incoming:
            if self._parked_unhandled(message):
                continue
            if traced is None:
                result, error = self.dispatcher.dispatch_failure(message)
                self._settle(message, result == NotificationResult.REQUEUE, error)
                continue
            with traced.handle_notification(message, self._pool) as span:
                result, error = self.dispatcher.dispatch_failure(message)
                requeue = result == NotificationResult.REQUEUE
                if requeue:
                    traced.failed(span, error or "the endpoint asked for a requeue")
                self._settle(message, requeue, error)


class BatchNotificationServer(NotificationServerBase):
    """A listener that hands notifications to endpoints in lists."""

    dispatcher: BatchNotificationDispatcher

    def _process_incoming(self, incoming: list[IncomingMessage]) -> None:
        incoming = [m for m in incoming if not self._parked_unhandled(m)]
        if not incoming:
            return
        traced = self._tracing
        if traced is None:
            self._handle_batch_of(incoming)
            return
        with traced.handle_batch(incoming, self._pool) as span:
            failed = self._handle_batch_of(incoming)
            if failed:
                traced.failed(span, f"{len(failed)} of {len(incoming)} notifications requeued")

    def _handle_batch_of(
        self, incoming: list[IncomingMessage]
    ) -> dict[IncomingMessage, BaseException | None]:
        try:
            failed = self.dispatcher.dispatch_batch_failures(incoming)
        except Exception as exc:
            log_exception(LOG, "Failed to dispatch a batch of %d notifications", len(incoming))
            failed = dict.fromkeys(incoming, exc)
        for message in incoming:
            self._settle(message, message in failed, failed.get(message))
        return failed


def _check_features(transport: Transport, allow_requeue: bool, pool: str | None) -> None:
    transport.require_features(requeue=allow_requeue, pools=pool is not None)


def get_notification_listener(
    transport: Transport,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: Serializer | None = None,
    allow_requeue: bool = False,
    pool: str | None = None,
    server_cls: type[NotificationServer] = NotificationServer,
    *,
    temporary_pool: bool = False,
) -> NotificationServer:
    """Build a notification listener.

    Args:
        transport: the notification transport.
        targets: the targets to listen on (topic, optional exchange).
        endpoints: objects with methods named like priorities.
        executor: ``threading`` (default), ``blocking``, ``eventlet`` or ``asyncio``.
        serializer: converts contexts and payloads back.
        allow_requeue: let endpoints requeue (REQUEUE or an exception).
        pool: listen as a member of this pool (one copy of each notification per pool).
        server_cls: the server class to build.
        temporary_pool: ``pool``'s queue goes away with this listener (a tap:
            its own copy of every notification, nothing left behind); see
            :func:`messaging.drivers.names.temporary_pool` for a unique name.

    Raises:
        NotImplementedError: the driver cannot requeue (with ``allow_requeue``) or
            has no pools (with ``pool``).
        ExecutorLoadFailure: the executor name is unknown.
    """
    _check_features(transport, allow_requeue, pool)
    dispatcher = NotificationDispatcher(endpoints, serializer)
    return server_cls(
        transport,
        targets,
        dispatcher,
        executor,
        allow_requeue,
        pool,
        temporary_pool=temporary_pool,
    )


def get_batch_notification_listener(
    transport: Transport,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: Serializer | None = None,
    allow_requeue: bool = False,
    pool: str | None = None,
    batch_size: int | None = None,
    batch_timeout: float | None = None,
    server_cls: type[BatchNotificationServer] = BatchNotificationServer,
    *,
    temporary_pool: bool = False,
) -> BatchNotificationServer:
    """Build a listener whose endpoints receive lists of notifications.

    A batch is handed over when ``batch_size`` notifications are there or
    ``batch_timeout`` seconds after its first one, whichever comes first.
    Other arguments are as for :func:`get_notification_listener`.
    """
    _check_features(transport, allow_requeue, pool)
    dispatcher = BatchNotificationDispatcher(endpoints, serializer)
    return server_cls(
        transport,
        targets,
        dispatcher,
        executor,
        allow_requeue,
        pool,
        batch_size or 1,
        batch_timeout,
        temporary_pool=temporary_pool,
    )
