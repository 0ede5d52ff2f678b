"""Option listing and defaults at oslo.messaging's path (``oslo_messaging.opts``).

``list_opts()`` is what ``oslo-config-generator`` calls; ``set_defaults()``
changes option defaults for a service. Both are :mod:`messaging.conf`'s.
"""

from messaging.conf import list_opts, set_defaults

__all__ = ["list_opts", "set_defaults"]
