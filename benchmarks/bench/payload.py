"""The message every workload sends: a 10-field dict of about 500 bytes of JSON.

The same size as the payloads of the oslo.messaging baseline
(``/work/shared/reference/performance-baseline.md``), with the usual mix of a
service's notification: ids, a name, a state, timestamps, numbers and a list.
"""

from __future__ import annotations

import json
from typing import Any

_TEMPLATE: dict[str, Any] = {
    "seq": 0,
    "instance_id": "4f1c2a9e-8d3b-4c57-9a61-2b7e0f5d3c18",
    "tenant_id": "b6a0e4d2c91f4e0f8f7a3d2c1b0a9e8d",
    "display_name": "benchmark-instance-0001.compute.example.org",
    "state": "active",
    "state_description": "running normally after a scheduled resize to a larger flavor",
    "created_at": "2026-11-23T10:15:42.123456+00:00",
    "memory_mb": 8192,
    "image_ref": "https://images.example.org/v2/images/0c5f8b1e-1a2b-4c3d-9e8f-7a6b5c4d3e2f",
    "tags": ["benchmark", "messaging", "payload", "ten-fields", "json"],
}


def make_payload(seq: int) -> dict[str, Any]:
    """Return the payload for message number ``seq`` (a new dict each time)."""
    payload = dict(_TEMPLATE)
    payload["seq"] = seq
    return payload


PAYLOAD_BYTES = len(json.dumps(make_payload(10_000)))
