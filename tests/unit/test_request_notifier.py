"""RequestNotifier on a real WSGI application (WebOb), sending through the memory transport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import webob
import webob.dec
from oslo_config import cfg

import messaging
from messaging.drivers.memory import get_broker, reset_brokers
from messaging.notify.middleware import RequestNotifier


@webob.dec.wsgify
def hello(request: webob.Request) -> webob.Response:
    if request.path == "/boom":
        raise RuntimeError("It happens!")
    return webob.Response("Some response", content_type="text/plain")


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    reset_brokers()
    conf = cfg.ConfigOpts()
    with messaging.ConfFixture(conf, transport_url="fake://"):
        conf.set_override("driver", ["messagingv2"], group="oslo_messaging_notifications")
        yield conf
    reset_brokers()


def sent(priority: str = "info") -> list[dict[str, Any]]:
    queue = f"notifications.{priority}"
    if queue not in get_broker().queues():
        return []
    bodies = get_broker().messages(queue)
    return [json.loads(json.loads(body)["oslo.message"]) for body in bodies]


def test_request_and_response_notifications(conf: cfg.ConfigOpts) -> None:
    app = RequestNotifier(hello, conf=conf, publisher_id="api.host1", service_name="compute")
    request = webob.Request.blank(
        "/foo/bar",
        environ={"REQUEST_METHOD": "GET"},
        headers={"X-Auth-Token": "s3cret-token", "Authorization": "Basic abc", "X-Trace": "t"},
    )
    response = request.get_response(app)
    assert response.status == "200 OK"
    assert response.text == "Some response"
    first, second = sent()
    assert (first["event_type"], second["event_type"]) == ("http.request", "http.response")
    assert first["publisher_id"] == "api.host1"
    assert set(first["payload"]) == {"request"}
    assert set(second["payload"]) == {"request", "response"}
    req = first["payload"]["request"]
    assert req["PATH_INFO"] == "/foo/bar"
    assert req["REQUEST_METHOD"] == "GET"
    assert req["HTTP_X_SERVICE_NAME"] == "compute"
    assert req["HTTP_X_TRACE"] == "t"
    assert not any(key.startswith("wsgi.") for key in req)
    assert "s3cret-token" not in json.dumps(sent())
    assert "Basic abc" not in json.dumps(sent())
    assert second["payload"]["response"]["status"] == "200 OK"
    assert second["payload"]["response"]["headers"]["content-length"] == "13"


def test_application_exception_is_notified_and_raised(conf: cfg.ConfigOpts) -> None:
    app = RequestNotifier(hello, conf=conf)
    with pytest.raises(RuntimeError, match="It happens!"):
        webob.Request.blank("/boom").get_response(app)
    _, response = sent()
    exception = response["payload"]["exception"]
    assert set(response["payload"]) == {"request", "exception"}
    assert exception["value"] == "RuntimeError('It happens!')"
    assert "middleware.py" in exception["traceback"][0]


def test_ignored_methods_and_paste_factory(conf: cfg.ConfigOpts) -> None:
    make = RequestNotifier.factory(
        {"publisher_id": "global"}, ignore_req_list="get, PUT", conf=conf
    )
    app = make(hello)
    assert app.notifier.publisher_id == "global"
    webob.Request.blank("/skip", environ={"REQUEST_METHOD": "GET"}).get_response(app)
    webob.Request.blank("/skip", environ={"REQUEST_METHOD": "PUT"}).get_response(app)
    assert sent() == []
    webob.Request.blank("/accept", environ={"REQUEST_METHOD": "POST"}).get_response(app)
    assert [n["event_type"] for n in sent()] == ["http.request", "http.response"]


def test_a_failing_notification_does_not_fail_the_request(
    conf: cfg.ConfigOpts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = RequestNotifier(hello, conf=conf)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("broker gone")

    monkeypatch.setattr(messaging.Notifier, "_notify", refuse)
    response = webob.Request.blank("/x").get_response(app)
    assert response.status_int == 200
    assert "Could not send the http.request notification" in caplog.text
