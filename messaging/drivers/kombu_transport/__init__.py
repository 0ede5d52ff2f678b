"""The kombu driver: notifications and RPC over any kombu transport.

URL forms (the driver is loaded by the name ``kombu``, the part before ``+``)::

    kombu+redis://[user:pass@]host:6379[,host2:6379]/<db>?<options>
    kombu+rediss://..., kombu+sentinel://h1:26379,h2:26379/<db>?master_name=...
    kombu+memory://                 (in-process; every connection of the process shares it)
    kombu+amqp://guest:guest@host:5672/vhost   (``kombu://...`` alone means this)
    kombu+<any kombu transport>:///?<options>  (a "/" before the "?" when there is no host)

Each host becomes a ``<transport>://`` URL for kombu, several joined for its
failover; the virtual host is the path (a database number for Redis).

What works (the driver conformance suite runs on Redis and memory; it also
passed on RabbitMQ through ``kombu+amqp://`` when tried by hand): notifications
to ``<topic>.<priority>`` in the target's exchange, kept from the first send
even before anyone listens (the publisher declares and binds that queue, as
oslo.messaging does); listener pools (queue
``<pool>``); requeue; batches; RPC calls, casts, directed calls, servers sharing
a topic, call monitoring (heartbeats) and remote exceptions; fanout casts where
the transport has fanout exchanges (Redis: through PUB/SUB, so only servers
listening at the time get them, as on RabbitMQ; memory: yes). The names are
oslo.messaging's (:mod:`messaging.drivers.names`): topic exchange
``<control_exchange>``, queues ``<topic>`` and ``<topic>.<server>``, fanout
exchange ``<topic>_fanout`` with a queue per server, reply queue ``reply_<hex>``
(with oslo's ``x-expires``, which Redis honours), and the body is oslo's
envelope (:mod:`messaging.wire`).

:attr:`KombuDriver.capabilities` follow the transport: ``requeue``, ``pools``
and ``rpc`` always; ``fanout`` when the transport has fanout exchanges (kombu's
``implements.exchange_type`` and, for virtual transports, ``Channel.supports_fanout``).
A transport without topic exchanges gets direct ones (every key the driver
uses is exact, so they route alike).

Options: the URL query. The driver's own are ``prefetch_count`` (unacknowledged
messages a listener may hold, default 64), ``prefetch_bytes`` (16 MiB: a listener
holding more than this takes no more from the broker), ``connect_timeout`` (5 s), the
reconnection backoff ``interval_start`` (1 s), ``interval_step`` (2 s) and
``interval_max`` (30 s), and ``publish_timeout`` (30 s: how long a send may try,
whatever its ``retry``; a call's send is bounded by the call's timeout too). A
broker that refuses the credentials (Redis's ``AuthenticationError``, AMQP's
``ACCESS_REFUSED``) fails a send, a call or a listener at once. Every other key
is one of the transport's ``transport_options`` (for Redis: ``visibility_timeout``,
``global_keyprefix``, ``socket_timeout``, ``health_check_interval``...; ``polling_interval`` for
virtual transports: the wait between polls, 0.01 s by default on memory, and on
Redis how long one ``BRPOP`` blocks, 1 s by default, which is how long a closing
listener's thread may take to finish in the background). An unknown key is an
``InvalidTransportURL`` naming it and the accepted ones (see
:mod:`~messaging.drivers.kombu_transport.options`). ``[oslo_messaging_rabbit]``
options are not read: entities are declared with oslo's defaults.

Limits, from kombu's transports rather than this driver:

- Message TTL: Redis and memory keep a call request nobody took after its
  timeout (RabbitMQ drops it); a server that takes it late runs it and its reply
  is dropped by the client, with a log.
- ``TransportOptions(at_least_once=True)`` (mandatory publishing) is not
  supported: an unroutable request is dropped, as without it, and a warning logged.
- Redis emulates acknowledgements: a message taken by a process that dies
  without closing comes back after ``visibility_timeout`` (an hour by default),
  and kombu then routes it again through its exchange, so every queue bound
  with its key gets a copy. A clean close or a requeue gives a message back to
  its own queue only (see :mod:`~messaging.drivers.kombu_transport.consumer`).
- A Redis that restarts empty (no persistence) loses its queues and bindings:
  listeners see the connection drop and declare theirs again, but what is
  published before they have reconnected is not routed anywhere.
- memory: in-process only; all its connections share one set of queues, so
  separate uses must use separate names.
- Other transports get the same treatment but are not tested here; kombu's
  filesystem transport, for one, fails when two listeners share a queue (both
  read the same file).

Threads: kombu connections are not thread-safe, so each listener owns a
connection and a thread (``messaging-kombu-<role>``); acknowledgements and
requeues run on it. Publishing uses one connection per broker and process,
under a lock; the reply queue has its own consumer, shared by the process's clients.
"""

from messaging.drivers.kombu_transport.driver import KombuDriver

__all__ = ["KombuDriver"]
