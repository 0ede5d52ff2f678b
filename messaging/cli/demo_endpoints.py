"""Endpoints of ``messaging demo``, usable with ``messaging serve`` too.

``messaging serve --topic calculator messaging.cli.demo_endpoints:Calculator``
serves them; each method prints what it received on stdout.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Calculator"]


def _show(method: str, kwargs: dict[str, Any], result: Any = None) -> None:
    arguments = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(kwargs.items()))
    tail = "" if result is None else f" -> {json.dumps(result)}"
    print(f"received {method}({arguments}){tail}", flush=True)


class Calculator:
    """A tiny RPC endpoint: arithmetic, an echo, and a cast that records a note."""

    def add(self, ctxt: Any, a: float, b: float) -> float:
        """Return ``a + b``."""
        result = a + b
        _show("add", {"a": a, "b": b}, result)
        return result

    def divide(self, ctxt: Any, a: float, b: float) -> float:
        """Return ``a / b`` (dividing by zero raises ZeroDivisionError to the caller)."""
        _show("divide", {"a": a, "b": b})
        return a / b

    def echo(self, ctxt: Any, **kwargs: Any) -> dict[str, Any]:
        """Return the arguments and the request context as they arrived."""
        _show("echo", kwargs)
        return {"args": kwargs, "context": {k: v for k, v in ctxt.items() if v is not None}}

    def record(self, ctxt: Any, note: str) -> None:
        """Print ``note`` (meant to be cast: nobody waits for the result)."""
        _show("record", {"note": note})
