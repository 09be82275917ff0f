"""The audit log: calls named by (peer, id), and logs of older versions kept on upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedbox.rpc.audit import AuditLog

_OLD_SCHEMA = """
CREATE TABLE calls (
    id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    peer TEXT NOT NULL,
    app TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    size INTEGER,
    sha256 TEXT,
    created REAL,
    answered REAL,
    status INTEGER,
    response_size INTEGER,
    note TEXT,
    PRIMARY KEY (id, direction)
);
CREATE INDEX calls_created ON calls (created);
"""
ID = "0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60"


def _claim(log: AuditLog, peer: str, id: str = ID) -> bool:
    return log.claim(id=id, peer=peer, app="t", endpoint="echo", size=1, sha256="x", created=1.0)


def test_the_same_id_from_two_peers_is_two_calls(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    assert _claim(log, "a@x.org") and _claim(log, "c@x.org")
    assert not _claim(log, "a@x.org")
    log.record_refused(
        id=ID, peer="c@x.org", app="t", endpoint="echo", status=400, at=2.0, note="junk"
    )
    assert log.incoming("a@x.org", ID).status is None
    assert log.incoming("c@x.org", ID).status == 400
    assert log.incoming("b@x.org", ID) is None
    log.close()


def test_an_old_log_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    conn.execute(
        "INSERT INTO calls (id, direction, peer, app, endpoint, created, status, note)"
        " VALUES (?, 'in', 'a@x.org', 't', 'echo', 5.0, 200, 'old row')",
        (ID,),
    )
    conn.commit()
    conn.close()
    log = AuditLog(path)
    (row,) = log.records()
    assert (row.id, row.peer, row.status, row.note) == (ID, "a@x.org", 200, "old row")
    assert _claim(log, "c@x.org")  # the old key would refuse this second claim
    log.close()
    reopened = AuditLog(path)
    assert len(reopened.records()) == 2
    reopened.close()


def test_an_old_log_gains_job_events_and_keeps_their_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    conn.execute(
        "INSERT INTO calls (id, direction, peer, app, endpoint, created)"
        " VALUES (?, 'in', 'a@x.org', 'rds', 'submit', 5.0)",
        (ID,),
    )
    conn.commit()
    conn.close()
    log = AuditLog(path)
    assert [r.id for r in log.records()] == [ID]
    assert log.job_events() == []
    log.record_job_event(job="j1", at=9.0, actor="sci@x.org", action="submit", after="submitted")
    log.record_job_event(job="j2", at=8.0, actor="sci@x.org", action="refused approve")
    log.record_job_event(
        job="j1", at=7.0, actor="o@x.org", action="rejected", before="submitted", after="rejected"
    )
    log.close()
    reopened = AuditLog(path)
    assert [(e.job, e.action) for e in reopened.job_events()] == [
        ("j1", "submit"),
        ("j2", "refused approve"),
        ("j1", "rejected"),
    ]
    assert [e.action for e in reopened.job_events("j1", limit=1)] == ["rejected"]
    assert [r.id for r in reopened.records()] == [ID]
    reopened.close()


def test_counts_since_and_the_choices_a_dashboard_filters_by(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    try:
        log.claim(id="a", peer="p@x.org", app="t", endpoint="e", size=1, sha256="x", created=10.0)
        log.claim(id="b", peer="q@x.org", app="u", endpoint="e", size=1, sha256="x", created=20.0)
        log.record_sent(
            id="c", peer="q@x.org", app="t", endpoint="e", size=1, sha256="x", created=30.0
        )
        assert log.counts_since(15.0) == {"in": 1, "out": 1}
        assert log.counts_since(31.0) == {"in": 0, "out": 0}
        assert [r.id for r in log.records(since=20.0)] == ["c", "b"]
        assert log.peers() == ["p@x.org", "q@x.org"] and log.apps() == ["t", "u"]
        assert log.call(id="c", direction="out", peer="q@x.org") is not None
        assert log.call(id="c", direction="in", peer="q@x.org") is None
    finally:
        log.close()
