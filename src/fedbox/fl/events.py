"""Progress events the Flower side reports, and the callback plumbing.

Library code never prints: FileGrid and the runners describe what happens with
:class:`FlEvent` values passed to an optional callback (the CLI draws them).
A failing callback is logged and ignored, because watching a run must never
break it (Flower's ``_emit_event`` does the same).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EventCallback", "FlEvent", "emit", "error_summary"]

logger = logging.getLogger(__name__)

EventKind = Literal["waiting", "joined", "sent", "reply", "timeout", "stop", "stopped"]


@dataclass(frozen=True, slots=True)
class FlEvent:
    """One thing that happened on the aggregator's side of a run.

    ``waiting``: the run waits for datasites to join (``waiting`` lists them, ``needed``
    says how many must have joined; ``email`` is empty); ``joined``: ``email`` answered
    the run's join message; ``sent``: a message left for ``email``; ``reply``: its answer came back
    (``error`` set if it is a Flower Error); ``timeout``: no answer by the
    deadline; ``stop``/``stopped``: the stop message went out / was acknowledged.
    """

    kind: EventKind
    email: str
    node_id: int
    message_type: str = ""
    round: str = ""
    """The message's ``group_id``, or the ``server-round`` in its config when the
    strategy leaves ``group_id`` empty (Flower's FedAvg does)."""
    nbytes: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    """For replies: time from sending to the reply being read."""
    waiting: tuple[str, ...] = ()
    needed: int = 0
    at: float = field(default_factory=time.time)


EventCallback = Callable[[FlEvent], None]


def emit(callback: EventCallback | None, event: FlEvent) -> None:
    """Call ``callback(event)``; its failures are logged, never raised."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        logger.exception("progress callback failed on %s event; ignored", event.kind)


_FLOWER_REASON = re.compile(r"<class '(?:[\w.]*\.)?(\w+)'>:<'(.*)'>", re.DOTALL)
"""Flower's reason for a ClientApp exception: ``<class 'mod.Type'>:<'message'>``."""


def error_summary(reason: str) -> str:
    """An Error reply's reason in one line: ``Type: first line`` for a ClientApp's
    exception, else the reason's first line. The full traceback is in the datasite's log."""
    match = _FLOWER_REASON.fullmatch(reason.strip())
    if match is None:
        return reason.strip().split("\n", 1)[0]
    kind, text = match.groups()
    first = text.strip().split("\n", 1)[0]
    return f"{kind}: {first}" if first else kind
