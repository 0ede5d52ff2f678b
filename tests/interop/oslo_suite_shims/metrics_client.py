"""Stand-in for oslo.messaging's private ``_metrics/client.py``.

oslo.messaging's RPC client tests import it at module level (for one test of
oslo.metrics support, which ``messaging`` does not have); the oslo suite runner
supplies this module at that path so that the other tests of the file run.
"""

from typing import Any

#: oslo's module-level collector; nothing here collects.
METRICS_COLLECTOR: Any = None


class MetricsCollectorClient:
    """Named as oslo's client so that a test may patch its methods; it sends nothing."""

    def put_into_txqueue(self, *args: Any, **kwargs: Any) -> None:
        """Drop the metrics."""
