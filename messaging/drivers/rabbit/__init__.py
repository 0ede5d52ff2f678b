"""The RabbitMQ transport driver (``rabbit://``), wire-compatible with oslo.messaging.

Modules, by role: :mod:`~.options` (settings), :mod:`~.topology` (what is
declared, as oslo.messaging declares it), :mod:`~.connection` (a self-healing
connection with its I/O thread), :mod:`~.publisher` (confirmed publishing),
:mod:`~.consumer` (subscriptions), :mod:`~.reply` (the reply queue) and
:mod:`~.driver` (the driver itself).
"""

from messaging.drivers.rabbit.driver import RabbitDriver
from messaging.drivers.rabbit.options import list_opts

__all__ = ["RabbitDriver", "list_opts"]
