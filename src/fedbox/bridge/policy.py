"""What the owner's bridge lets through: an allowlist of methods and path globs, and a
per-sender rate limit. Both are decided before the application sees the request.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from fedbox.datasite.globs import Glob, compile_pattern, validate_pattern

__all__ = ["AllowRule", "Allowlist", "RateLimit", "parse_rate"]

_METHOD = re.compile(r"[A-Z]+")


@dataclass(frozen=True, slots=True)
class AllowRule:
    """``"GET /api/*"``, ``"GET,POST /items/**"``, ``"* /**"``: methods (``*`` for any)
    and a path glob with the permission files' syntax (``*`` within one path segment,
    ``**`` across segments)."""

    methods: frozenset[str] | None
    pattern: str
    glob: Glob | None = field(compare=False, repr=False)
    """None for ``/`` alone, which allows the root only."""

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        methods_text, _, path = text.strip().partition(" ")
        path = path.strip()
        if not methods_text or not path.startswith("/"):
            raise ValueError(
                f"allow rule {text!r} must be 'METHODS /path-glob', e.g. 'GET /api/**'"
            )
        methods = None
        if methods_text != "*":
            names = [m.strip().upper() for m in methods_text.split(",")]
            if not all(_METHOD.fullmatch(m) for m in names):
                raise ValueError(f"allow rule {text!r}: methods are like GET or GET,POST or *")
            methods = frozenset(names)
        relative = path.lstrip("/")
        glob = compile_pattern(validate_pattern(relative)) if relative else None
        return cls(methods, path, glob)

    def allows(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        relative = path.strip("/")  # "/api/x/" is "/api/x" with a trailing slash
        if self.glob is None:
            return not relative
        return bool(relative) and self.glob.matches(relative, "")


class Allowlist:
    """Rules; a request passes if any rule allows it. ``None`` rules allow everything."""

    def __init__(self, rules: Iterable[str | AllowRule] | None) -> None:
        self.rules = (
            None
            if rules is None
            else [r if isinstance(r, AllowRule) else AllowRule.parse(r) for r in rules]
        )

    def allows(self, method: str, path: str) -> bool:
        """Whether ``method`` on ``path`` (decoded, without the query) may run. A path
        with an empty, ``.`` or ``..`` segment never may: an application or server
        that normalises it would run another path than the one checked."""
        segments = path.split("/")[1:]
        if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
            return False
        if self.rules is None:
            return True
        return any(rule.allows(method, path) for rule in self.rules)


_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(text: str) -> RateLimit:
    """``"60/min"``, ``"5/s"``, ``"1000/h"``: requests per sender per period."""
    count, _, unit = text.strip().partition("/")
    try:
        n = int(count)
    except ValueError:
        n = 0
    if n < 1 or unit.strip().lower() not in _UNITS:
        raise ValueError(f"rate {text!r} must be like 60/min, 5/s or 1000/h")
    return RateLimit(n, _UNITS[unit.strip().lower()])


class RateLimit:
    """A token bucket per sender: ``count`` requests at once, refilled at ``count`` per
    ``period`` seconds. The caller says what time it is (the box's clock), so tests
    never sleep."""

    def __init__(self, count: int, period: float) -> None:
        if count < 1 or period <= 0:
            raise ValueError("a rate needs a positive count and period")
        self.count = count
        self.period = period
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, at)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RateLimit {self.count} per {self.period:g} s>"

    def take(self, sender: str, now: float) -> float:
        """Spend one of ``sender``'s requests: 0 if allowed, else seconds until one is."""
        rate = self.count / self.period
        with self._lock:
            tokens, at = self._buckets.get(sender, (float(self.count), now))
            tokens = min(float(self.count), tokens + max(0.0, now - at) * rate)
            if tokens >= 1.0:
                self._buckets[sender] = (tokens - 1.0, now)
                return 0.0
            self._buckets[sender] = (tokens, now)
            return max(1.0, math.ceil((1.0 - tokens) / rate))
