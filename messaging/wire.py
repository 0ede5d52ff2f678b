"""The oslo.messaging wire format, shared by every driver.

What travels is JSON text. RPC requests, replies and ``messagingv2``
notifications are wrapped in the 2.0 envelope::

    {"oslo.version": "2.0", "oslo.message": "<the message, as a JSON string>"}

``messaging`` (v1) notifications are the bare dict. Inside, the request context
is flattened into ``_context_<key>`` entries, every message carries a
``_unique_id`` (hex uuid4) for de-duplication, and calls add ``_msg_id``,
``_reply_q`` and ``_timeout`` (the call-monitor timeout). Failures travel as a
JSON string ``{class, module, message, tb, args, kwargs}`` inside the reply.

What is sent and decoded is bounded (:class:`Limits`): a body larger than
``max_message_size`` is refused to its sender (:func:`check_size`), and a
received one larger than that, or nested deeper than ``max_message_depth``, is
refused before the JSON parser sees it (:func:`loads`), so that no body can
exhaust the parser's recursion or the receiver's memory.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import itertools
import json
import random
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from messaging.exceptions import MessageSerializationError, MessageTooLarge, RemoteError

__all__ = [
    "DEFAULT_LIMITS",
    "ENVELOPE_VERSION",
    "Decoded",
    "Limits",
    "UndecodableBody",
    "UnsupportedEnvelopeVersion",
    "body_size",
    "check_size",
    "decode",
    "deserialize_failure",
    "dumps",
    "encode_notification",
    "encode_reply",
    "encode_request",
    "envelope",
    "loads",
    "new_message_id",
    "new_msg_id",
    "new_unique_id",
    "pack_context",
    "serialize_failure",
    "timestamp",
    "unwrap",
]

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
CONTEXT_PREFIX = "_context_"
REMOTE_SUFFIX = "_Remote"


class UnsupportedEnvelopeVersion(ValueError):
    """An envelope announces a version this library cannot read."""


class UndecodableBody(ValueError):
    """A received body refused before parsing: too large, or nested too deep."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the messages a transport sends and decodes.

    Attributes:
        max_size: the largest body, in bytes (UTF-8), sent or decoded; 0 for none.
        max_depth: the deepest nesting of JSON arrays and objects decoded; 0 for none.
    """

    max_size: int = 128 * 1024 * 1024
    max_depth: int = 128


#: The bounds of the ``[DEFAULT]`` options' defaults.
DEFAULT_LIMITS = Limits()


def body_size(body: str | bytes) -> int:
    """The size of ``body`` on the wire: its length in bytes, UTF-8 for text."""
    if isinstance(body, bytes):
        return len(body)
    return len(body.encode("utf-8", "surrogatepass"))


def _larger_than(body: str | bytes, limit: int) -> int | None:
    """``body``'s size if it is above ``limit`` (0: no limit), else None; cheap for text."""
    if not limit:
        return None
    if isinstance(body, str) and len(body) * 4 <= limit:
        return None  # a character is at most four bytes
    size = len(body) if isinstance(body, bytes) or len(body) > limit else body_size(body)
    return size if size > limit else None


def check_size(body: str | bytes, limits: Limits, what: str | Callable[[], str]) -> None:
    """Refuse to send ``body`` if it is larger than ``limits.max_size``.

    Args:
        body: the encoded message.
        limits: the transport's bounds.
        what: the message, for the error (``"The notification to 'x.info'"``), or
            what makes that text (called only for the error).

    Raises:
        MessageTooLarge: the body is too large; the error names the bound.
    """
    size = _larger_than(body, limits.max_size)
    if size is not None:
        raise MessageTooLarge(what() if callable(what) else what, size, limits.max_size)


_ESCAPED_BACKSLASH = b"\\\\"
_ESCAPED_QUOTE = b'\\"'
#: Every byte that is neither a bracket nor a quote.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_CHUNK = 1 << 20


def _deeper_than(text: str | bytes, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``limit`` deep.

    A scan of the brackets outside strings, in C-speed steps; the common case
    (no more opening brackets than ``limit``) costs two counts.
    """
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return False  # counted on the text: no encoding for the common case
        data = text.encode("utf-8", "surrogatepass")
    else:
        data = text
        if data.count(b"[") + data.count(b"{") <= limit:
            return False
    # Inside strings, backslashes pair up from the left; what is left of a
    # string once its escapes are gone has no quote, so quotes split strings off.
    data = data.replace(_ESCAPED_BACKSLASH, b"").replace(_ESCAPED_QUOTE, b"")
    parts = data.translate(None, _NOT_STRUCTURE).split(b'"')
    brackets = b"".join(parts[0::2]).translate(_STEPS)
    if b"\x01" * (limit + 1) in brackets:
        return True  # a run of opening brackets: the usual deep body, found at C speed
    depth = 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = brackets[start : start + _CHUNK]
        if max(itertools.accumulate(memoryview(chunk).cast("b"), initial=depth)) > limit:
            return True
        depth += chunk.count(1) - chunk.count(255)
    return False


def loads(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """``json.loads``, refusing first what is larger or deeper than ``limits`` allow.

    Raises:
        UndecodableBody: the text is too large or nested too deep; the error says which.
        ValueError: it is not JSON (``json.JSONDecodeError``, ``UnicodeDecodeError``).
    """
    size = _larger_than(text, limits.max_size)
    if size is not None:
        raise UndecodableBody(
            f"the body is {size} bytes, more than max_message_size = {limits.max_size}"
        )
    if limits.max_depth and _deeper_than(text, limits.max_depth):
        raise UndecodableBody(
            f"the body nests arrays or objects more than max_message_depth = "
            f"{limits.max_depth} deep"
        )
    return json.loads(text)


# The ids only need to be unique, not unpredictable: random.getrandbits is a
# fraction of the cost of uuid4()'s os.urandom, and the random module reseeds
# itself in a forked child.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4_int() -> int:
    return (random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET


def new_unique_id() -> str:
    """Return a ``_unique_id``: a (version 4) uuid as 32 hex characters."""
    return f"{_uuid4_int():032x}"


new_msg_id = new_unique_id


def new_message_id() -> str:
    """Return a notification ``message_id``: a (version 4) uuid with dashes.

    Made by ``uuid.uuid4()`` itself (once per notification), so that tests which
    patch it, as oslo.messaging's and services' do, get the id they chose.
    """
    return str(uuid.uuid4())


def timestamp(moment: datetime.datetime | None = None) -> str:
    """Format a notification timestamp: naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``.

    As with ``str(datetime)``, the fraction is left out when it is zero.
    """
    moment = moment or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return str(moment)


class _Unserialisable(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


def _to_primitive(value: object) -> Any:
    # The conversions oslo.serialization's jsonutils applies when kombu encodes.
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise _Unserialisable(value)


def _find(container: Any, target: object, path: str, what: str) -> str | None:
    # The path is relative to the message: top-level string keys are written bare
    # (``payload['when']``), anything else hangs off ``what``.
    if container is target:
        return path
    items: Iterable[tuple[str, Any]]
    if isinstance(container, Mapping):
        items = (
            (key if not path and isinstance(key, str) else f"{path or what}[{key!r}]", val)
            for key, val in container.items()
        )
    elif isinstance(container, list | tuple | set | frozenset):
        items = ((f"{path or what}[{i}]", val) for i, val in enumerate(container))
    else:
        return None
    for sub_path, val in items:
        found = _find(val, target, sub_path, what)
        if found is not None:
            return found
    return None


def dumps(obj: Any, what: str = "message") -> str:
    """Encode ``obj`` as JSON, as kombu would for oslo.messaging.

    Args:
        obj: the value to encode.
        what: how to name ``obj`` in an error.

    Raises:
        MessageSerializationError: a value in ``obj`` cannot be encoded; the
            error names where it sits, e.g. ``payload['when']``.
    """
    try:
        return json.dumps(obj, default=_to_primitive)
    except _Unserialisable as exc:
        path = _find(obj, exc.value, "", what) or what
        raise MessageSerializationError(path, type(exc.value).__name__) from None
    except (TypeError, ValueError) as exc:  # e.g. non-string keys, circular references
        raise MessageSerializationError(what, f"{type(exc).__name__}: {exc}") from exc


def envelope(raw: Mapping[str, Any]) -> dict[str, str]:
    """Wrap a message in the 2.0 envelope (the inner message becomes a JSON string)."""
    return {VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: dumps(raw)}


_ENVELOPE_HEAD = f'{{"{VERSION_KEY}": "{ENVELOPE_VERSION}", "{MESSAGE_KEY}": '


def enveloped_json(raw: Mapping[str, Any]) -> str:
    """``json.dumps(envelope(raw))``, without building the outer dict."""
    return _ENVELOPE_HEAD + json.dumps(dumps(raw)) + "}"


def unwrap(body: Any, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Undo :func:`envelope`; bodies without an envelope are returned as they are.

    Raises:
        UnsupportedEnvelopeVersion: the envelope has another major version or a
            newer minor one.
        UndecodableBody: the inner message is too large or nested too deep.
    """
    if not isinstance(body, dict) or VERSION_KEY not in body or MESSAGE_KEY not in body:
        return body
    version = str(body[VERSION_KEY])
    major, _, minor = version.partition(".")
    want_major, _, want_minor = ENVELOPE_VERSION.partition(".")
    if major != want_major or int(minor or 0) > int(want_minor):
        raise UnsupportedEnvelopeVersion(f"Unsupported message envelope version {version}")
    return loads(body[MESSAGE_KEY], limits)


def pack_context(message: dict[str, Any], ctxt: Any) -> None:
    """Flatten a request context into ``_context_<key>`` entries of ``message``."""
    if ctxt is None:
        return
    items = ctxt.items() if isinstance(ctxt, Mapping) else ctxt.to_dict().items()
    for key, value in items:
        message[f"{CONTEXT_PREFIX}{key}"] = value


@dataclass
class Decoded:
    """A message as a receiver sees it once the wire details are taken off.

    Attributes:
        ctxt: the request context, with ``client_timeout`` added as oslo does.
        message: the application message.
        unique_id: the ``_unique_id``, for de-duplication (None if absent).
        msg_id: the call's ``_msg_id`` (None for casts and notifications).
        reply_q: where the reply goes (None for casts and notifications).
        client_timeout: the call-monitor timeout the caller asked for.
    """

    ctxt: dict[str, Any]
    message: dict[str, Any]
    unique_id: str | None = None
    msg_id: str | None = None
    reply_q: str | None = None
    client_timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decode(body: str | bytes | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Turn a received body into a :class:`Decoded` message.

    Raises:
        ValueError: the body is not JSON, or not a JSON object once unwrapped
            (``UnsupportedEnvelopeVersion`` for a foreign envelope,
            ``UndecodableBody`` for one past ``limits``).
    """
    outer = loads(body, limits) if isinstance(body, str | bytes) else dict(body)
    inner = unwrap(outer, limits)
    if not isinstance(inner, dict):
        raise ValueError(f"message body is a JSON {type(inner).__name__}, not an object")
    ctxt: dict[str, Any] = {}
    message: dict[str, Any] = {}
    for key, value in inner.items():
        if key.startswith(CONTEXT_PREFIX):
            ctxt[key[len(CONTEXT_PREFIX) :]] = value
        else:
            message[key] = value
    unique_id = message.pop("_unique_id", None)
    msg_id = message.pop("_msg_id", None)
    reply_q = message.pop("_reply_q", None)
    client_timeout = message.pop("_timeout", None)
    ctxt["client_timeout"] = client_timeout
    return Decoded(ctxt, message, unique_id, msg_id, reply_q, client_timeout)


def encode_notification(ctxt: Any, message: Mapping[str, Any], version: float) -> str:
    """Encode a notification body: enveloped for version 2.0, bare for 1.0."""
    raw = dict(message)
    raw["_unique_id"] = new_unique_id()
    pack_context(raw, ctxt)
    if version >= 2.0:
        return enveloped_json(raw)
    return dumps(raw)


def encode_request(
    ctxt: Any,
    message: Mapping[str, Any],
    msg_id: str | None = None,
    reply_q: str | None = None,
    call_monitor_timeout: float | None = None,
) -> str:
    """Encode an RPC request; ``msg_id`` and ``reply_q`` are given for calls only."""
    raw = dict(message)
    if msg_id is not None:
        raw["_msg_id"] = msg_id
        raw["_reply_q"] = reply_q
        raw["_timeout"] = call_monitor_timeout
    raw["_unique_id"] = new_unique_id()
    pack_context(raw, ctxt)
    return enveloped_json(raw)


def encode_reply(
    msg_id: str, result: Any = None, failure: str | None = None, ending: bool = True
) -> str:
    """Encode an RPC reply (``ending=False`` with no result is a call-monitor heartbeat)."""
    raw = {
        "result": result,
        "failure": failure,
        "ending": ending,
        "_msg_id": msg_id,
        "_unique_id": new_unique_id(),
    }
    return enveloped_json(raw)


def serialize_failure(exc: BaseException) -> str:
    """Serialise an exception for an RPC reply, as a JSON string.

    Arguments (``args``, ``kwargs``) that cannot travel as JSON are sent as their
    ``repr()``, so that the caller still gets the failure.
    """
    cls = type(exc)
    name, module = cls.__name__, cls.__module__
    if name.endswith(REMOTE_SUFFIX) and module.endswith(REMOTE_SUFFIX):
        name, module = name[: -len(REMOTE_SUFFIX)], module[: -len(REMOTE_SUFFIX)]
    kwargs = getattr(exc, "kwargs", None) or {}
    data = {
        "class": name,
        "module": module,
        "message": str(exc),
        "tb": traceback.format_exception(cls, exc, exc.__traceback__),
        "args": list(exc.args),
        "kwargs": kwargs,
    }
    try:
        return dumps(data, what="failure")
    except MessageSerializationError:
        # Exceptions carry arbitrary objects in their arguments; the reply must
        # still go out, so those become their repr().
        data["args"] = [_primitive_or_repr(arg) for arg in exc.args]
        if isinstance(kwargs, Mapping):
            data["kwargs"] = {str(k): _primitive_or_repr(v) for k, v in kwargs.items()}
        else:
            data["kwargs"] = {}
        return dumps(data, what="failure")


def _primitive_or_repr(value: Any) -> Any:
    try:
        dumps(value)
    except MessageSerializationError:
        return repr(value)
    return value


_remote_classes: dict[type[BaseException], type[BaseException]] = {}


def _remote_class(cls: type[BaseException]) -> type[BaseException]:
    # A subclass per original class, so that isinstance() keeps working while
    # str() shows the remote traceback; instances are built from it directly.
    remote = _remote_classes.get(cls)
    if remote is None:

        def __str__(self: BaseException) -> str:  # noqa: N807
            # The remote side's text, not one formatted here from the arguments.
            base = getattr(self, "remote_message", None)
            if base is None:
                base = cls.__str__(self)
            tb = getattr(self, "remote_traceback", "")
            return f"{base}\n{tb}" if tb else base

        remote = type(
            cls.__name__ + REMOTE_SUFFIX,
            (cls,),
            {"__str__": __str__, "__module__": cls.__module__ + REMOTE_SUFFIX},
        )
        _remote_classes[cls] = remote
    return remote


def deserialize_failure(data: str, allowed_remote_exmods: Iterable[str] = ()) -> BaseException:
    """Rebuild the exception of a failure reply.

    Builtin exceptions come back as their own class, with the remote traceback
    appended to the first argument. Exceptions of a module listed in
    ``allowed_remote_exmods`` come back as a ``<Class>_Remote`` subclass of the
    original (``isinstance`` holds), whose ``str()`` is the remote message and
    traceback. Anything else, and a failure that cannot be read, becomes
    :class:`RemoteError` (its ``traceback`` a list of lines).
    """
    try:
        failure = loads(data)
        if not isinstance(failure, dict):
            raise ValueError(f"the failure is a JSON {type(failure).__name__}, not an object")
    except (ValueError, TypeError) as unreadable:
        return RemoteError(
            "UnreadableFailure", f"the remote failure cannot be read: {unreadable}", ""
        )
    module = failure.get("module") or ""
    name = failure.get("class") or "Exception"
    message = str(failure.get("message", ""))
    tb_lines = [str(line) for line in failure.get("tb") or []]
    tb = "".join(tb_lines)
    if module in ("exceptions", "builtins"):
        module = "builtins"
    elif module not in set(allowed_remote_exmods):
        return RemoteError(name, message, tb_lines)
    args = failure.get("args") or []
    kwargs = failure.get("kwargs") or {}
    try:
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{module}.{name} is not an exception class")
        if module == "builtins":
            exc: BaseException = cls(*args, **kwargs)
            exc.args = (f"{message}\n{tb}", *exc.args[1:])
            return exc
        exc = _remote_class(cls)(*args, **kwargs)
    except (AttributeError, TypeError, ImportError, ValueError):
        return RemoteError(name, message, tb_lines)
    exc.remote_message = message  # type: ignore[attr-defined]
    exc.remote_traceback = tb  # type: ignore[attr-defined]
    return exc
