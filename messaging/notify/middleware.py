"""``RequestNotifier``: WSGI middleware sending a notification per HTTP request and response.

In a paste pipeline::

    [filter:notifier]
    paste.filter_factory = messaging.notify.middleware:RequestNotifier.factory
    service_name = compute
    ignore_req_list = GET, HEAD

For each request not ignored, ``http.request`` is sent (INFO) before the
application runs, with ``{'request': <environ>}``, then ``http.response`` with
the request and ``{'response': {'status', 'headers'}}``, or, when the
application raised, ``{'exception': {'value', 'traceback'}}`` (and the exception
propagates). The environ is reduced to its upper-case keys (no ``wsgi.*``
objects), without credentials (``X-Auth-Token`` as in oslo.messaging, and also
the other token, authorization and cookie headers). A notification that fails to
send is logged and the request goes on.

Needs WebOb (the ``middleware`` extra).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback as tb_module
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import webob
import webob.dec

from messaging.notify.notifier import Notifier
from messaging.transport import get_notification_transport

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = ["RequestNotifier"]

LOG = logging.getLogger(__name__)

#: Request headers never put in a notification: they carry credentials.
SECRET_ENVIRON_KEYS = frozenset(
    {
        "HTTP_X_AUTH_TOKEN",
        "HTTP_X_SUBJECT_TOKEN",
        "HTTP_X_SERVICE_TOKEN",
        "HTTP_AUTHORIZATION",
        "HTTP_COOKIE",
    }
)


def environ_payload(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a WSGI environ that goes into a notification.

    Upper-case keys only (CGI variables and headers, not ``wsgi.*`` objects),
    without :data:`SECRET_ENVIRON_KEYS`.
    """
    return {
        key: value
        for key, value in environ.items()
        if key.isupper() and key not in SECRET_ENVIRON_KEYS
    }


class RequestNotifier:
    """WSGI middleware that notifies ``http.request`` and ``http.response``.

    Args:
        application: the WSGI application to wrap.
        **options: as in a paste section (strings): ``url`` (the notification
            transport URL; the configuration's when absent), ``publisher_id``
            (default: the program's name), ``service_name`` (put in the request
            as ``HTTP_X_SERVICE_NAME``; default: the request's host) and
            ``ignore_req_list`` (comma-separated HTTP methods not notified). In
            code, ``conf`` may pass the configuration to read the notification
            options from; paste can pass none, so ``cfg.CONF`` (where the
            service parsed its files) is read then.
    """

    def __init__(self, application: Any, **options: Any) -> None:
        from oslo_config import cfg

        self.application = application
        conf: cfg.ConfigOpts = options.get("conf") or cfg.CONF
        transport = get_notification_transport(conf, url=options.get("url"))
        self.notifier = Notifier(
            transport,
            publisher_id=options.get("publisher_id") or os.path.basename(sys.argv[0]),
        )
        self.service_name: str | None = options.get("service_name")
        self.ignore_req_list = [
            method.strip().upper()
            for method in str(options.get("ignore_req_list") or "").split(",")
            if method.strip()
        ]

    @classmethod
    def factory(
        cls, global_conf: Mapping[str, Any] | None, **local_conf: Any
    ) -> Callable[[Any], RequestNotifier]:
        """A paste ``filter_factory``: the section's options over the global ones."""
        options = {**(global_conf or {}), **local_conf}

        def make_filter(application: Any) -> RequestNotifier:
            return cls(application, **options)

        return make_filter

    def _send(self, event_type: str, payload: dict[str, Any]) -> None:
        try:
            self.notifier.info({}, event_type, payload)
        except Exception:
            LOG.exception("Could not send the %s notification", event_type)

    def process_request(self, request: webob.Request) -> None:
        """Send ``http.request`` for ``request``."""
        request.environ["HTTP_X_SERVICE_NAME"] = self.service_name or request.host
        self._send("http.request", {"request": environ_payload(request.environ)})

    def process_response(
        self,
        request: webob.Request,
        response: webob.Response | None = None,
        exception: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        """Send ``http.response``: the request, and the response or the exception."""
        payload: dict[str, Any] = {"request": environ_payload(request.environ)}
        if response is not None:
            payload["response"] = {
                "status": response.status,
                "headers": {name.lower(): value for name, value in response.headers.items()},
            }
        if exception is not None:
            payload["exception"] = {
                "value": repr(exception),
                "traceback": tb_module.format_tb(traceback),
            }
        self._send("http.response", payload)

    @webob.dec.wsgify  # type: ignore[untyped-decorator]
    def __call__(self, request: webob.Request) -> webob.Response:
        """Notify around the application's handling of ``request`` (a WSGI app too)."""
        if request.method in self.ignore_req_list:
            return request.get_response(self.application)
        self.process_request(request)
        try:
            response = request.get_response(self.application)
        except Exception as exc:
            self.process_response(request, exception=exc, traceback=exc.__traceback__)
            raise
        self.process_response(request, response)
        return response
