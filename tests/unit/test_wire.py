"""The oslo.messaging wire format, checked against bodies captured from oslo.messaging 18.3.1.

The expected texts below are the samples of reference §4.8 (data, not code).
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_context import context as oslo_context

from messaging import wire
from messaging.exceptions import MessageSerializationError, RemoteError
from tests.unit import remote_errors

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ALLOWED = ["tests.unit.remote_errors"]

# --- captured samples (reference §4.8) ---------------------------------------------------------

CALL_REQUEST_RAW = (
    '{"oslo.version": "2.0", "oslo.message": "{\\"method\\": \\"add\\", \\"args\\": {\\"a\\": 1, '
    '\\"b\\": 2}, \\"version\\": \\"1.2\\", \\"_msg_id\\": \\"10120306f7ab4660853c2cc68946c21c\\", '
    '\\"_reply_q\\": \\"reply_01e39525137a454e88d83083e988172c\\", \\"_timeout\\": null, '
    '\\"_unique_id\\": \\"b194eacc645c4467af4169e581b00e6a\\", \\"_context_user\\": \\"u1\\", '
    '\\"_context_project_id\\": \\"p1\\", \\"_context_request_id\\": \\"req-123\\"}"}'
)
REPLY_INNER = (
    '{"result": {"sum": 3, "ctxt_user": "u1"}, "failure": null, "ending": true, '
    '"_msg_id": "10120306f7ab4660853c2cc68946c21c", '
    '"_unique_id": "e616725433a74dd4a5e0289d9f8f0230"}'
)
FAILURE = {
    "class": "ValueError",
    "module": "builtins",
    "message": "bad value 7",
    "tb": ["Traceback (most recent call last):\n", "...", "ValueError: bad value 7\n"],
    "args": ["bad value 7"],
    "kwargs": {},
}
FAILURE_INNER = (
    '{"result": null, "failure": FAILURE, "ending": true, '
    '"_msg_id": "add046d772a143468131068c4582b042", '
    '"_unique_id": "7e33080b7afb4de1bdba4051e9f28b30"}'
).replace("FAILURE", json.dumps(json.dumps(FAILURE)))
HEARTBEAT_INNER = (
    '{"result": null, "failure": null, "ending": false, '
    '"_msg_id": "36dbf95dfb654aaeaff3271dfdf7c0a8", '
    '"_unique_id": "3fad2d58b3ce431bb857402abedd8027"}'
)
FANOUT_INNER = (
    '{"method": "add", "args": {"a": 5, "b": 6}, "version": "1.2", '
    '"_unique_id": "4810882ceb164fcb8a64bf7e15d76354", '
    '"_context_user": "u1", "_context_project_id": "p1", "_context_request_id": "req-123"}'
)
NOTIFICATION_V2_RAW = (
    '{"oslo.version": "2.0", "oslo.message": "{\\"message_id\\": '
    '\\"d5292f1f-5357-4958-af2a-8680e74df60c\\", \\"publisher_id\\": \\"compute.host1\\", '
    '\\"event_type\\": \\"compute.instance.create.end\\", \\"priority\\": \\"INFO\\", '
    '\\"payload\\": {\\"instance_id\\": \\"abc\\", \\"state\\": \\"active\\"}, '
    '\\"timestamp\\": \\"2026-11-23 13:40:18.856999\\", '
    '\\"_unique_id\\": \\"c4e44cae1b0a4deeaec7d05fe7f727d1\\"}"}'
)
NOTIFICATION_V1_RAW = (
    '{"message_id": "0e068dd4-32a3-4240-9edb-66998dd478a5", "publisher_id": "compute.host1", '
    '"event_type": "compute.instance.create.error", "priority": "ERROR", '
    '"payload": {"instance_id": "abc"}, "timestamp": "2026-11-23 13:40:18.859379", '
    '"_unique_id": "3ef0e9c61f154d7a8a1cdc10bd0492ae"}'
)
CTXT = {"user": "u1", "project_id": "p1", "request_id": "req-123"}
OSLO_CONTEXT_KEYS = [
    "user",
    "project_id",
    "system_scope",
    "project",
    "domain",
    "user_domain",
    "project_domain",
    "is_admin",
    "read_only",
    "show_deleted",
    "auth_token",
    "request_id",
    "global_request_id",
    "resource_uuid",
    "roles",
    "user_identity",
    "is_admin_project",
]


def enveloped(inner: str) -> str:
    """The raw body of an enveloped message, as kombu's json.dumps writes it."""
    return '{"oslo.version": "2.0", "oslo.message": ' + json.dumps(inner) + "}"


@pytest.fixture
def fixed_unique_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make new_unique_id() return the ids pushed onto the returned list, in order."""
    ids: list[str] = []
    monkeypatch.setattr(wire, "new_unique_id", lambda: ids.pop(0))
    yield ids
    assert ids == [], "an expected _unique_id was not used"


def inner_of(raw: str) -> dict[str, Any]:
    outer = json.loads(raw)
    assert list(outer) == ["oslo.version", "oslo.message"]
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    inner: dict[str, Any] = json.loads(outer["oslo.message"])
    return inner


# --- decoding the captured bodies ----------------------------------------------------------------


def test_decode_call_request() -> None:
    decoded = wire.decode(CALL_REQUEST_RAW)
    assert decoded.ctxt == {**CTXT, "client_timeout": None}
    assert decoded.message == {"method": "add", "args": {"a": 1, "b": 2}, "version": "1.2"}
    assert decoded.unique_id == "b194eacc645c4467af4169e581b00e6a"
    assert decoded.msg_id == "10120306f7ab4660853c2cc68946c21c"
    assert decoded.reply_q == "reply_01e39525137a454e88d83083e988172c"
    assert decoded.client_timeout is None


def test_decode_accepts_bytes_and_parsed_dicts() -> None:
    from_bytes = wire.decode(CALL_REQUEST_RAW.encode("utf-8"))
    from_dict = wire.decode(json.loads(CALL_REQUEST_RAW))
    assert from_bytes == from_dict == wire.decode(CALL_REQUEST_RAW)


def test_decode_reply() -> None:
    decoded = wire.decode(enveloped(REPLY_INNER))
    assert decoded.message == {
        "result": {"sum": 3, "ctxt_user": "u1"},
        "failure": None,
        "ending": True,
    }
    assert decoded.msg_id == "10120306f7ab4660853c2cc68946c21c"
    assert decoded.unique_id == "e616725433a74dd4a5e0289d9f8f0230"
    assert decoded.reply_q is None
    assert decoded.ctxt == {"client_timeout": None}


def test_decode_failure_reply_keeps_failure_as_json_string() -> None:
    decoded = wire.decode(enveloped(FAILURE_INNER))
    assert decoded.message["result"] is None
    assert decoded.message["ending"] is True
    assert isinstance(decoded.message["failure"], str)
    assert json.loads(decoded.message["failure"]) == FAILURE
    assert decoded.msg_id == "add046d772a143468131068c4582b042"
    assert decoded.unique_id == "7e33080b7afb4de1bdba4051e9f28b30"


def test_decode_heartbeat() -> None:
    decoded = wire.decode(enveloped(HEARTBEAT_INNER))
    assert decoded.message == {"result": None, "failure": None, "ending": False}
    assert decoded.msg_id == "36dbf95dfb654aaeaff3271dfdf7c0a8"
    assert decoded.unique_id == "3fad2d58b3ce431bb857402abedd8027"


def test_decode_fanout_cast() -> None:
    decoded = wire.decode(enveloped(FANOUT_INNER))
    assert decoded.message == {"method": "add", "args": {"a": 5, "b": 6}, "version": "1.2"}
    assert decoded.ctxt == {**CTXT, "client_timeout": None}
    assert decoded.unique_id == "4810882ceb164fcb8a64bf7e15d76354"
    assert decoded.msg_id is None
    assert decoded.reply_q is None


def test_decode_notification_v2() -> None:
    decoded = wire.decode(NOTIFICATION_V2_RAW)
    assert decoded.message == {
        "message_id": "d5292f1f-5357-4958-af2a-8680e74df60c",
        "publisher_id": "compute.host1",
        "event_type": "compute.instance.create.end",
        "priority": "INFO",
        "payload": {"instance_id": "abc", "state": "active"},
        "timestamp": "2026-11-23 13:40:18.856999",
    }
    assert decoded.unique_id == "c4e44cae1b0a4deeaec7d05fe7f727d1"
    assert decoded.ctxt == {"client_timeout": None}


def test_decode_notification_v1_without_envelope() -> None:
    decoded = wire.decode(NOTIFICATION_V1_RAW)
    assert decoded.message["event_type"] == "compute.instance.create.error"
    assert decoded.message["priority"] == "ERROR"
    assert decoded.message["payload"] == {"instance_id": "abc"}
    assert "_unique_id" not in decoded.message
    assert decoded.unique_id == "3ef0e9c61f154d7a8a1cdc10bd0492ae"


def test_decode_exposes_call_monitor_timeout_as_client_timeout() -> None:
    body = enveloped('{"method": "m", "args": {}, "_msg_id": "x", "_reply_q": "r", "_timeout": 2}')
    decoded = wire.decode(body)
    assert decoded.client_timeout == 2
    assert decoded.ctxt == {"client_timeout": 2}
    assert decoded.message == {"method": "m", "args": {}}


@pytest.mark.parametrize("body", ["not json", "[1, 2]", enveloped("[1, 2]"), '"text"'])
def test_decode_rejects_bodies_that_are_not_objects(body: str) -> None:
    with pytest.raises(ValueError):
        wire.decode(body)


# --- encoding reproduces the captured bodies byte for byte -------------------------------------


def test_encode_call_request_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("b194eacc645c4467af4169e581b00e6a")
    raw = wire.encode_request(
        CTXT,
        {"method": "add", "args": {"a": 1, "b": 2}, "version": "1.2"},
        msg_id="10120306f7ab4660853c2cc68946c21c",
        reply_q="reply_01e39525137a454e88d83083e988172c",
        call_monitor_timeout=None,
    )
    assert raw == CALL_REQUEST_RAW


def test_encode_fanout_cast_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("4810882ceb164fcb8a64bf7e15d76354")
    raw = wire.encode_request(CTXT, {"method": "add", "args": {"a": 5, "b": 6}, "version": "1.2"})
    assert raw == enveloped(FANOUT_INNER)


def test_encode_request_key_order_with_namespace() -> None:
    raw = wire.encode_request(
        {"user": "u"},
        {"method": "m", "args": {}, "namespace": "ns", "version": "2.1"},
        msg_id="m" * 32,
        reply_q="reply_q",
        call_monitor_timeout=5,
    )
    inner = inner_of(raw)
    assert list(inner) == [
        "method",
        "args",
        "namespace",
        "version",
        "_msg_id",
        "_reply_q",
        "_timeout",
        "_unique_id",
        "_context_user",
    ]
    assert inner["_timeout"] == 5
    assert HEX32.match(inner["_unique_id"])


def test_encode_reply_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("e616725433a74dd4a5e0289d9f8f0230")
    raw = wire.encode_reply("10120306f7ab4660853c2cc68946c21c", {"sum": 3, "ctxt_user": "u1"})
    assert raw == enveloped(REPLY_INNER)
    assert list(inner_of(raw)) == ["result", "failure", "ending", "_msg_id", "_unique_id"]


def test_encode_failure_reply_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("7e33080b7afb4de1bdba4051e9f28b30")
    raw = wire.encode_reply("add046d772a143468131068c4582b042", failure=json.dumps(FAILURE))
    assert raw == enveloped(FAILURE_INNER)


def test_encode_heartbeat_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("3fad2d58b3ce431bb857402abedd8027")
    raw = wire.encode_reply("36dbf95dfb654aaeaff3271dfdf7c0a8", ending=False)
    assert raw == enveloped(HEARTBEAT_INNER)


def notification(priority: str, event_type: str, payload: Any, message_id: str, ts: str) -> Any:
    return {
        "message_id": message_id,
        "publisher_id": "compute.host1",
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": ts,
    }


def test_encode_notification_v2_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("c4e44cae1b0a4deeaec7d05fe7f727d1")
    message = notification(
        "INFO",
        "compute.instance.create.end",
        {"instance_id": "abc", "state": "active"},
        "d5292f1f-5357-4958-af2a-8680e74df60c",
        "2026-11-23 13:40:18.856999",
    )
    assert wire.encode_notification({}, message, 2.0) == NOTIFICATION_V2_RAW


def test_encode_notification_v1_matches_capture(fixed_unique_id: list[str]) -> None:
    fixed_unique_id.append("3ef0e9c61f154d7a8a1cdc10bd0492ae")
    message = notification(
        "ERROR",
        "compute.instance.create.error",
        {"instance_id": "abc"},
        "0e068dd4-32a3-4240-9edb-66998dd478a5",
        "2026-11-23 13:40:18.859379",
    )
    assert wire.encode_notification(None, message, 1.0) == NOTIFICATION_V1_RAW


def test_encode_notification_v2_with_oslo_context_key_order() -> None:
    ctxt = oslo_context.RequestContext(user_id="u1", project_id="p1", request_id="req-1")
    message = notification("INFO", "e", {}, wire.new_message_id(), wire.timestamp())
    inner = inner_of(wire.encode_notification(ctxt, message, 2.0))
    assert list(inner) == [
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
        "_unique_id",
        *(f"_context_{key}" for key in OSLO_CONTEXT_KEYS),
    ]
    assert inner["_context_user"] == "u1"
    assert inner["_context_project_id"] == "p1"
    assert inner["_context_request_id"] == "req-1"
    assert inner["_context_auth_token"] is None


def test_encoded_bodies_use_kombu_separators() -> None:
    raw = wire.encode_request({"k": "v"}, {"method": "m", "args": {"a": [1, 2]}})
    assert raw.startswith('{"oslo.version": "2.0", "oslo.message": "{')
    assert '\\"args\\": {\\"a\\": [1, 2]}, ' in raw
    v1 = wire.encode_notification({"k": "v"}, {"payload": {"a": 1}}, 1.0)
    assert v1.startswith('{"payload": {"a": 1}, "_unique_id": "')


def test_every_encoded_message_gets_a_fresh_unique_id() -> None:
    ids = {inner_of(wire.encode_request(None, {"method": "m", "args": {}}))["_unique_id"]}
    ids.add(inner_of(wire.encode_request(None, {"method": "m", "args": {}}))["_unique_id"])
    ids.add(inner_of(wire.encode_reply("x"))["_unique_id"])
    assert len(ids) == 3
    assert all(HEX32.match(i) for i in ids)


# --- ids and timestamps -----------------------------------------------------------------------


def test_id_formats() -> None:
    assert HEX32.match(wire.new_unique_id())
    assert HEX32.match(wire.new_msg_id())
    assert wire.new_unique_id() != wire.new_unique_id()
    message_id = wire.new_message_id()
    assert len(message_id) == 36
    assert str(uuid.UUID(message_id)) == message_id
    assert message_id.count("-") == 4


def test_timestamp_format() -> None:
    moment = datetime.datetime(2026, 11, 23, 13, 40, 18, 856999)
    assert wire.timestamp(moment) == "2026-11-23 13:40:18.856999"
    assert wire.timestamp(moment.replace(microsecond=5)) == "2026-11-23 13:40:18.000005"


def test_timestamp_leaves_out_zero_fraction() -> None:
    assert wire.timestamp(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05"


def test_timestamp_converts_aware_datetimes_to_utc() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 1, 2, 1, 4, 5, 123, tzinfo=plus_two)
    assert wire.timestamp(moment) == "2026-01-01 23:04:05.000123"


def test_timestamp_now_is_naive_utc_text() -> None:
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$", wire.timestamp())


# --- envelope -----------------------------------------------------------------------------------


def test_unwrap_leaves_unenveloped_bodies_alone() -> None:
    body = {"event_type": "e", "payload": {}}
    assert wire.unwrap(body) is body
    half = {"oslo.version": "2.0", "payload": 1}
    assert wire.unwrap(half) is half
    assert wire.unwrap([1]) == [1]


def test_envelope_round_trip() -> None:
    raw = {"a": 1, "b": [1, 2]}
    env = wire.envelope(raw)
    assert env == {"oslo.version": "2.0", "oslo.message": '{"a": 1, "b": [1, 2]}'}
    assert wire.unwrap(env) == raw


@pytest.mark.parametrize("version", ["3.0", "2.1", "1.0"])
def test_unsupported_envelope_version_raises(version: str) -> None:
    body = {"oslo.version": version, "oslo.message": "{}"}
    with pytest.raises(wire.UnsupportedEnvelopeVersion, match=re.escape(version)):
        wire.unwrap(body)
    with pytest.raises(ValueError, match=re.escape(version)):
        wire.decode(json.dumps(body))


# --- context packing ----------------------------------------------------------------------------


def test_pack_context_from_dict() -> None:
    message: dict[str, Any] = {"method": "m"}
    wire.pack_context(message, {"user": "u", "roles": ["admin"]})
    assert message == {"method": "m", "_context_user": "u", "_context_roles": ["admin"]}


def test_pack_context_from_object_with_to_dict() -> None:
    ctxt = oslo_context.RequestContext(user_id="u1", request_id="req-1", roles=["r"])
    message: dict[str, Any] = {}
    wire.pack_context(message, ctxt)
    assert list(message) == [f"_context_{key}" for key in OSLO_CONTEXT_KEYS]
    assert message["_context_user"] == "u1"
    assert message["_context_request_id"] == "req-1"
    assert message["_context_roles"] == ["r"]


def test_pack_context_none_adds_nothing() -> None:
    message: dict[str, Any] = {"a": 1}
    wire.pack_context(message, None)
    assert message == {"a": 1}


def test_context_round_trip_through_decode() -> None:
    ctxt = oslo_context.RequestContext(user_id="u1", request_id="req-1")
    decoded = wire.decode(wire.encode_request(ctxt, {"method": "m", "args": {}}))
    assert decoded.ctxt == {**ctxt.to_dict(), "client_timeout": None}


# --- dumps --------------------------------------------------------------------------------------


def test_dumps_converts_values_as_oslo_jsonutils() -> None:
    value = uuid.UUID("d5292f1f-5357-4958-af2a-8680e74df60c")
    obj = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
        "noon": datetime.datetime(2026, 1, 2, 12, 0, 0),
        "set": {3},
        "tuple": (1, "a"),
        "uuid": value,
    }
    assert json.loads(wire.dumps(obj)) == {
        "when": "2026-01-02T03:04:05.000006",
        "noon": "2026-01-02T12:00:00.000000",
        "set": [3],
        "tuple": [1, "a"],
        "uuid": "d5292f1f-5357-4958-af2a-8680e74df60c",
    }


def test_dumps_names_the_path_of_an_unserialisable_value() -> None:
    with pytest.raises(MessageSerializationError) as info:
        wire.dumps({"payload": {"obj": object()}})
    assert str(info.value).startswith("payload['obj'] is of type object")
    assert info.value.path == "payload['obj']"
    assert info.value.value_type == "object"
    assert isinstance(info.value, TypeError)


def test_dumps_names_a_list_index() -> None:
    class Widget:
        pass

    with pytest.raises(MessageSerializationError) as info:
        wire.dumps({"payload": {"items": [1, 2, Widget()]}}, what="notification")
    assert info.value.path == "payload['items'][2]"
    assert "payload['items'][2]" in str(info.value)
    assert "Widget" in str(info.value)


def test_dumps_names_non_string_keys_and_the_root() -> None:
    marker = object()
    with pytest.raises(MessageSerializationError) as info:
        wire.dumps({1: {"x": [marker]}})
    assert info.value.path == "message[1]['x'][0]"
    with pytest.raises(MessageSerializationError) as info:
        wire.dumps([marker], what="payload")
    assert info.value.path == "payload[0]"
    with pytest.raises(MessageSerializationError) as info:
        wire.dumps(marker, what="payload")
    assert info.value.path == "payload"


def test_dumps_reports_non_string_keys() -> None:
    with pytest.raises(MessageSerializationError) as info:
        wire.dumps({"payload": {(1, 2): "x"}})
    assert "message" in str(info.value)


def test_encode_request_raises_for_unserialisable_args() -> None:
    with pytest.raises(MessageSerializationError, match=r"^args\['when'\] "):
        wire.encode_request({}, {"method": "m", "args": {"when": object()}})


# --- failures -----------------------------------------------------------------------------------


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_serialize_failure_matches_captured_shape() -> None:
    data = json.loads(wire.serialize_failure(raised(ValueError("bad value 7"))))
    assert list(data) == list(FAILURE)
    assert data["class"] == "ValueError"
    assert data["module"] == "builtins"
    assert data["message"] == "bad value 7"
    assert data["args"] == ["bad value 7"]
    assert data["kwargs"] == {}
    assert isinstance(data["tb"], list)
    assert data["tb"][0] == "Traceback (most recent call last):\n"
    assert data["tb"][-1] == "ValueError: bad value 7\n"
    assert all(isinstance(line, str) for line in data["tb"])


def test_serialize_failure_keeps_kwargs() -> None:
    data = json.loads(wire.serialize_failure(remote_errors.QuotaError("over", resource="cores")))
    assert data["class"] == "QuotaError"
    assert data["module"] == "tests.unit.remote_errors"
    assert data["kwargs"] == {"resource": "cores"}


def test_serialize_failure_survives_unserialisable_args() -> None:
    marker = object()
    data = json.loads(wire.serialize_failure(raised(ValueError(marker, 3))))
    assert data["class"] == "ValueError"
    assert data["args"] == [repr(marker), 3]
    assert data["message"] == str((marker, 3))
    kwargs_failure = remote_errors.QuotaError("over", resource=marker, count=2)
    data = json.loads(wire.serialize_failure(kwargs_failure))
    assert data["args"] == ["over"]
    assert data["kwargs"] == {"resource": repr(marker), "count": 2}


def test_deserialize_builtin_returns_exact_class_with_traceback() -> None:
    err = wire.deserialize_failure(wire.serialize_failure(raised(ValueError("bad value 7"))))
    assert type(err) is ValueError
    assert err.args[0].startswith("bad value 7\n")
    assert "Traceback (most recent call last)" in err.args[0]
    assert "ValueError: bad value 7" in str(err)


def test_deserialize_captured_failure() -> None:
    err = wire.deserialize_failure(json.dumps(FAILURE))
    assert type(err) is ValueError
    assert err.args == (
        "bad value 7\nTraceback (most recent call last):\n...ValueError: bad value 7\n",
    )


def test_deserialize_old_exceptions_module_name_is_builtins() -> None:
    err = wire.deserialize_failure(
        json.dumps({**FAILURE, "class": "KeyError", "module": "exceptions"})
    )
    assert type(err) is KeyError


def test_deserialize_keeps_extra_builtin_args() -> None:
    failure = wire.serialize_failure(raised(OSError(2, "No such file")))
    err = wire.deserialize_failure(failure)
    assert type(err) is FileNotFoundError
    assert err.args[0].startswith("[Errno 2] No such file\nTraceback")
    assert err.args[1] == "No such file"


def test_deserialize_non_allowed_module_gives_remote_error() -> None:
    failure = wire.serialize_failure(raised(remote_errors.QuotaError("over", resource="cores")))
    err = wire.deserialize_failure(failure, allowed_remote_exmods=[])
    assert isinstance(err, RemoteError)
    assert err.exc_type == "QuotaError"
    assert err.value == "over"
    assert err.traceback is not None
    assert "Traceback (most recent call last)" in "".join(err.traceback)
    assert "QuotaError: over" in "".join(err.traceback)


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "print", "NoSuchName"])
def test_deserialize_builtin_that_is_not_an_exception_gives_remote_error(name: str) -> None:
    err = wire.deserialize_failure(json.dumps({**FAILURE, "class": name}))
    assert isinstance(err, RemoteError)
    assert err.exc_type == name


def test_deserialize_allowed_module_gives_remote_subclass() -> None:
    failure = wire.serialize_failure(raised(remote_errors.QuotaError("over", resource="cores")))
    err = wire.deserialize_failure(failure, allowed_remote_exmods=ALLOWED)
    assert isinstance(err, remote_errors.QuotaError)
    assert type(err).__name__ == "QuotaError_Remote"
    assert type(err).__module__ == "tests.unit.remote_errors_Remote"
    assert err.kwargs == {"resource": "cores"}
    text = str(err)
    assert text.startswith("over\n")
    assert "Traceback (most recent call last)" in text
    assert "QuotaError: over" in text


def test_rebuilt_allowed_exception_shows_the_remote_message() -> None:
    # The remote side's text, even where the arguments would format otherwise here
    # (a remote running another version of the exception class, say).
    failure = json.dumps(
        {
            "class": "QuotaError",
            "module": "tests.unit.remote_errors",
            "message": "remote words",
            "tb": ["Traceback (most recent call last):\n", "QuotaError: remote words\n"],
            "args": ["local words"],
            "kwargs": {},
        }
    )
    err = wire.deserialize_failure(failure, ALLOWED)
    assert isinstance(err, remote_errors.QuotaError)
    assert str(err).startswith("remote words\nTraceback (most recent call last):")
    assert "local words" not in str(err)


def test_remote_class_is_reused() -> None:
    failure = wire.serialize_failure(remote_errors.QuotaError("x"))
    first = wire.deserialize_failure(failure, ALLOWED)
    second = wire.deserialize_failure(failure, ALLOWED)
    assert type(first) is type(second)


def test_reserialising_a_remote_exception_drops_the_suffix() -> None:
    failure = wire.serialize_failure(raised(remote_errors.QuotaError("over", resource="cores")))
    err = wire.deserialize_failure(failure, ALLOWED)
    data = json.loads(wire.serialize_failure(err))
    assert data["class"] == "QuotaError"
    assert data["module"] == "tests.unit.remote_errors"
    assert data["kwargs"] == {"resource": "cores"}
    again = wire.deserialize_failure(wire.serialize_failure(err), ALLOWED)
    assert type(again) is type(err)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("tests.unit.no_such_module", "QuotaError"),
        ("tests.unit.remote_errors", "NoSuchClass"),
        ("tests.unit.remote_errors", "NOT_AN_EXCEPTION"),
        ("tests.unit.remote_errors", "NeedsTwoArgs"),
    ],
)
def test_deserialize_unrebuildable_allowed_failure_gives_remote_error(
    module: str, name: str
) -> None:
    failure = json.dumps({**FAILURE, "class": name, "module": module, "message": "m"})
    err = wire.deserialize_failure(failure, [module])
    assert isinstance(err, RemoteError)
    assert err.exc_type == name
    assert err.value == "m"
    assert err.traceback is not None
    assert "ValueError: bad value 7" in "".join(err.traceback)


def test_failure_round_trip_inside_a_reply() -> None:
    failure = wire.serialize_failure(raised(KeyError("missing")))
    decoded = wire.decode(wire.encode_reply("abc", failure=failure))
    err = wire.deserialize_failure(decoded.message["failure"])
    assert type(err) is KeyError
    assert "missing" in err.args[0]
