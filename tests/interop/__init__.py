"""Interop tests: the real oslo.messaging (latest from PyPI) and this project over RabbitMQ.

oslo.messaging runs in a virtualenv of its own, outside the checkout, created by
the first run and reused afterwards (``oslo_env.py``):

- ``MESSAGING_INTEROP_VENV``: where it lives (default ``~/.cache/messaging-interop/oslo-venv``);
- ``MESSAGING_INTEROP_REFRESH=1``: upgrade it to the latest release first.

The oslo side runs as ``oslo_peer.py`` subprocesses; each test uses names of its
own on a RabbitMQ vhost made for the session. ``test_oslo_to_oslo.py`` checks the
harness itself; ``test_notifications_interop.py`` and ``test_rpc_interop.py`` check
both directions between oslo.messaging and ``messaging``.
"""
