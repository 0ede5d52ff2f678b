"""Exceptions that RPC clients of both sides are allowed to rebuild.

This module is imported under the top-level name ``interop_errors`` by the test
process (``conftest.py`` puts this directory on ``sys.path``) and by the oslo
peer (``oslo_peer.py`` runs from this directory), so the ``module`` field of a
serialised failure names the same module on both sides. Transports of the
tests are created with ``allowed_remote_exmods=['interop_errors']``.

It must stay importable by any Python >= 3.11 with nothing but the stdlib.
"""

from __future__ import annotations

ALLOWED_MODULE = "interop_errors"


class InteropError(Exception):
    """An application error with a keyword argument, as nova's exceptions carry.

    ``kwargs`` is what oslo's failure serialisation sends besides ``args``, so
    the rebuilt exception gets ``code`` back.
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.kwargs = {"code": code}
