"""Stand-in for oslo.messaging's private ``_drivers/kafka_driver/kafka_options.py``.

oslo.messaging's functional test utilities import that module and call its
``register_opts(conf, url)`` in every ``setUp``; ``messaging`` has no Kafka
driver, so the oslo suite runner (not the package) supplies this module at that
path. It registers nothing: no test run here uses Kafka.
"""

from typing import Any


def register_opts(conf: Any, url: Any) -> None:
    """Accept the call oslo's test utilities make; there are no Kafka options to register."""
