"""The shared window of the change log: newest rows only, read once per wake-up, and
``None`` for a cursor it no longer reaches (the feed then reads the log itself)."""

from __future__ import annotations

from pathlib import Path

from fedbox.hub.app import build_hub
from fedbox.hub.settings import HubSettings
from fedbox.hub.tail import ChangeTail


def test_window_keeps_the_newest_rows_and_refers_older_cursors_to_the_log(
    tmp_path: Path,
) -> None:
    index = build_hub(HubSettings(data=tmp_path)).index
    reads: list[None] = []
    tail = ChangeTail(index, capacity=3, on_read=lambda: reads.append(None))
    index.subscribe(lambda _batch: tail.invalidate())

    def put(n: int) -> int:
        return index.put(f"datasites/a@x.org/f{n}", "a@x.org", f"blob{n}", 1, "0" * 64).version

    first = [put(n) for n in range(2)]
    assert tail.after(0, 10) is None, "written before the window began"
    assert tail.after(first[-1], 10) == []
    later = [put(n) for n in range(2, 7)]
    assert tail.after(later[0], 10) is None, "pushed out of the window of 3"
    assert [c.seq for c in tail.after(later[1], 10) or []] == later[2:]
    reads_after_wake = len(reads)
    assert [c.seq for c in tail.after(later[2], 1) or []] == [later[3]]
    assert tail.after(later[-1], 10) == []
    assert len(reads) == reads_after_wake, "no new read without a wake-up"
    assert [c.path for c in tail.after(later[1], 10) or []] == [
        f"datasites/a@x.org/f{n}" for n in range(4, 7)
    ]
