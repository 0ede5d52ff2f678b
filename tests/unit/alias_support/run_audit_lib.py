"""Run by test_oslo_alias in a process of its own: install the alias, then use audit_lib."""

from __future__ import annotations

import json
import sys

import messaging

messaging.install_as_oslo_messaging()

import audit_lib  # noqa: E402  (the alias must be in place before it imports)
from oslo_config import cfg  # noqa: E402

from messaging.drivers.memory import get_broker  # noqa: E402

conf = cfg.ConfigOpts()
conf([])
messaging.ConfFixture(conf, transport_url="fake://").setUp()
publisher = audit_lib.AuditPublisher(conf)
publisher.emit({"action": "read"})
received = [json.loads(body) for body in get_broker().messages("audit.info")]
print(
    json.dumps(
        {
            "oslo_messaging_is_messaging": audit_lib.oslo_messaging is messaging,
            "notifier_class": f"{type(publisher.notifier).__module__}."
            f"{type(publisher.notifier).__qualname__}",
            "transport_class": type(publisher.transport).__module__,
            "received": received,
            "modules": sorted(n for n in sys.modules if n.startswith("oslo_messaging")),
        }
    )
)
