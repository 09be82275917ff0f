"""``/metrics`` in Prometheus text format: requests and latency by route, websockets, sizes.

Kept by hand (a few counters) rather than with a client library: the hub needs no more.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["Metrics", "MetricsMiddleware"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, list[float]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._latency_count: dict[str, int] = defaultdict(int)
        self.websockets = 0
        self.feed_wakeups = 0
        """Times a feed was woken to look for changes (event loop only: no lock)."""
        self._log_reads: dict[str, int] = defaultdict(int)

    def log_read(self, reader: str) -> None:
        """Count a change-log query made for the change feeds (``tail``: the shared
        window's, once per wake-up; ``cursor``: one socket's, behind the window)."""
        with self._lock:
            self._log_reads[reader] += 1

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            buckets = self._latency.setdefault(route, [0.0] * len(_BUCKETS))
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._latency_sum[route] += seconds
            self._latency_count[route] += 1

    def render(self, head: int, blob_bytes: int) -> str:
        lines = [
            "# HELP fedbox_hub_requests_total HTTP requests by method, route and status.",
            "# TYPE fedbox_hub_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(
                    f'fedbox_hub_requests_total{{method="{method}",route="{_label(route)}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP fedbox_hub_request_seconds Request latency by route.",
                "# TYPE fedbox_hub_request_seconds histogram",
            ]
            for route, buckets in sorted(self._latency.items()):
                name = _label(route)
                for bound, hits in zip(_BUCKETS, buckets, strict=True):
                    lines.append(
                        f'fedbox_hub_request_seconds_bucket{{route="{name}",le="{bound}"}} {hits:g}'
                    )
                count = self._latency_count[route]
                lines.append(
                    f'fedbox_hub_request_seconds_bucket{{route="{name}",le="+Inf"}} {count}'
                )
                total = self._latency_sum[route]
                lines.append(f'fedbox_hub_request_seconds_sum{{route="{name}"}} {total:.6f}')
                lines.append(f'fedbox_hub_request_seconds_count{{route="{name}"}} {count}')
            websockets, wakeups = self.websockets, self.feed_wakeups
            lines += [
                "# HELP fedbox_hub_feed_log_reads_total Change-log queries for the change feeds.",
                "# TYPE fedbox_hub_feed_log_reads_total counter",
            ]
            for reader in ("tail", "cursor"):
                n = self._log_reads[reader]
                lines.append(f'fedbox_hub_feed_log_reads_total{{reader="{reader}"}} {n}')
        lines += [
            "# HELP fedbox_hub_websockets Open change-feed websockets.",
            "# TYPE fedbox_hub_websockets gauge",
            f"fedbox_hub_websockets {websockets}",
            "# HELP fedbox_hub_feed_wakeups_total Times a change feed was woken to look.",
            "# TYPE fedbox_hub_feed_wakeups_total counter",
            f"fedbox_hub_feed_wakeups_total {wakeups}",
            "# HELP fedbox_hub_change_log_head Sequence number of the newest change.",
            "# TYPE fedbox_hub_change_log_head gauge",
            f"fedbox_hub_change_log_head {head}",
            "# HELP fedbox_hub_blob_bytes Bytes of all current file versions.",
            "# TYPE fedbox_hub_blob_bytes gauge",
            f"fedbox_hub_blob_bytes {blob_bytes}",
        ]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Pure ASGI (no body buffering): times each HTTP request and labels it by route."""

    def __init__(self, app: Callable[..., Any], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], name, status, time.perf_counter() - start)
