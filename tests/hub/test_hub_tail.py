"""The shared window of the change log: newest rows only, read once per wake-up, and
``None`` for a cursor it no longer reaches (the feed then reads the log itself)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, event

from fedbox.hub.app import build_hub
from fedbox.hub.context import Hub
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


def _changes_queries(engine: Engine) -> list[str]:
    """Every statement the engine runs that reads the change log, as it runs."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM changes" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def _put(hub: Hub, path: str, body: bytes, writer: str = "a@x.org") -> int:
    blob = hub.index.blobs.create()
    blob.write(body)
    blob.finish()
    return hub.index.put(path, writer, blob.key, len(body), "0" * 64).version


def test_rules_written_by_another_process_apply_from_the_tails_read_alone(
    tmp_path: Path,
) -> None:
    """Two hubs over one database, as two processes: a grant (and its withdrawal) written
    through one holds at the other as soon as its feeds' shared tail has read it, and the
    rules learn it from that read, with no change-log query of their own."""
    writer, reader = (build_hub(HubSettings(data=tmp_path)) for _ in range(2))
    reader.tail.after(0, 10)  # the window starts here, as the rules did
    note, rules = "datasites/a@x.org/club/note.txt", "datasites/a@x.org/club/syft.pub.yaml"
    queries = _changes_queries(reader.index.engine)
    _put(writer, note, b"for bob")
    head = _put(writer, rules, b'rules:\n  - pattern: "**"\n    access: {read: [b@x.org]}\n')
    assert not reader.access.may_read("b@x.org", note)
    assert not reader.access.seen_through(head)
    reader.tail.invalidate()  # what a NOTIFY from the writer does
    assert [c.path for c in reader.tail.after(0, 10) or []] == [note, rules]
    assert reader.access.seen_through(head)
    assert reader.access.may_read("b@x.org", note)
    writer.index.delete(rules, "a@x.org")
    reader.tail.invalidate()
    assert [c.op for c in reader.tail.after(head, 10) or []] == ["delete"]
    assert not reader.access.may_read("b@x.org", note)
    assert len(queries) == 2, "one read of the log per wake-up, the tail's, and no other"
