"""One body per broadcast (issues 6, 11.11): a model FedAvg sends to every node is
written once and copied by the kernel, one copy of its own per node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from disk_usage import store_usage
from large_helpers import AGG, Federation, blob_files, digest_app, model_of, model_sha

MODEL = 2 << 20


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
def fed(request: pytest.FixtureRequest, root: Path) -> Iterator[Federation]:
    federation = Federation(root, 5, digest_app, encrypt=request.param)
    yield federation
    federation.close()


def test_a_broadcast_to_five_nodes_writes_the_model_once(fed: Federation) -> None:
    model = model_of(MODEL)
    before, _ = store_usage(fed.root)
    replies = fed.round(model)
    added, _ = store_usage(fed.root)
    assert {r.content["metrics"]["sha"] for r in replies} == {model_sha(model)}
    body = sum(len(a.data) for a in model.values())
    assert 5 * body < added - before < 5 * body + 64 * 1024, "one copy per node, no more"
    links = blob_files(fed.root, AGG)
    assert len({p.stat().st_ino for p in links}) == 5, "no copy shared with another node"
    assert len(links) == 5 and all(p.stat().st_nlink == 1 for p in links)
    assert {p.parent.parent.parent.name for p in links} == {
        f"syft_outbox_inbox_{AGG}_to_{e}" for e in fed.emails
    }, "each node reads the model from its own folder"


def test_the_same_model_sent_again_is_not_written_again(fed: Federation) -> None:
    model = model_of(MODEL, seed=3)
    fed.round(model)
    inodes = {p.stat().st_ino for p in blob_files(fed.root, AGG)}
    mtimes = {p.stat().st_mtime_ns for p in blob_files(fed.root, AGG)}
    before, _ = store_usage(fed.root)
    replies = fed.round(model)
    after, _ = store_usage(fed.root)
    assert {r.content["metrics"]["sha"] for r in replies} == {model_sha(model)}
    assert after - before < 64 * 1024
    assert {p.stat().st_ino for p in blob_files(fed.root, AGG)} == inodes
    assert {p.stat().st_mtime_ns for p in blob_files(fed.root, AGG)} == mtimes
