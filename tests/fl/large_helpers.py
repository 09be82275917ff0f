"""Shared by the large-model tests: an in-process federation and store accounting."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import fedbox
from fedbox.fl.client import ClientNode, node_config_for
from fedbox.fl.grid import FileGrid

AGG = "agg@x.org"
APP = "agg@x.org_large_1700000000"


def blob_files(root: Path, writer: str | None = None) -> list[Path]:
    pattern = f"syft_outbox_inbox_{writer}_to_*/*/blobs/*" if writer else "*/*/blobs/*"
    return sorted(p for p in root.glob(pattern) if not p.name.startswith("."))


def digest_app() -> ClientApp:
    """Answers with the SHA-256 of the model it got (a small reply)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        data = b"".join(a.data for a in msg.content["model"].values())
        metrics = MetricRecord({"sha": int(hashlib.sha256(data).hexdigest()[:12], 16)})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def plus_one_app() -> ClientApp:
    """Trivial training: the model + 1 (a reply as large as the request)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        record = msg.content["model"]
        out = ArrayRecord({k: type(v)(v.numpy() + 1) for k, v in record.items()})
        return Message(RecordDict({"model": out}), reply_to=msg)

    return app


class Federation:
    """An aggregator and ``n`` ClientNodes, all boxes in this process (threads)."""

    def __init__(
        self,
        root: Path,
        n: int,
        make_app: Callable[[], ClientApp],
        **connect: object,
    ) -> None:
        self.root = root
        self.emails = [f"node{i}@x.org" for i in range(n)]
        self.boxes: list[fedbox.Box] = []
        self.nodes = []
        for i, email in enumerate(self.emails):
            box = self._connect(email, **connect)
            app = make_app()
            node = ClientNode(box, APP, lambda app=app: app, node_config_for(i, n, None))
            self.nodes.append(node.start())
        self.agg = self._connect(AGG, **connect)
        self.grid = FileGrid(self.agg.app(APP), self.emails, timeout=60)
        assert self.grid.wait_for_datasites(n, timeout=60) == self.emails

    def _connect(self, email: str, **connect: object) -> fedbox.Box:
        box = fedbox.connect(self.root, email, fsync=False, **connect)  # type: ignore[arg-type]
        self.boxes.append(box)
        return box

    def round(self, model: ArrayRecord) -> list[Message]:
        content = RecordDict({"model": model})
        messages = [
            Message(content, node, "train", group_id="1") for node in self.grid.get_node_ids()
        ]
        replies = self.grid.send_and_receive(messages, timeout=60)
        assert len(replies) == len(messages)
        errors = [r.error.reason for r in replies if r.has_error()]
        assert not errors, errors
        return replies

    def close(self) -> None:
        for box in self.boxes:
            box.close()


def model_of(nbytes: int, seed: int = 0) -> ArrayRecord:
    """A float32 model of about ``nbytes`` bytes, plus small arrays of other dtypes."""
    rng = np.random.default_rng(seed)
    return ArrayRecord(
        [
            rng.random(nbytes // 4, dtype=np.float32),
            np.arange(300, dtype=np.int16).reshape(3, 100),
            rng.random((2, 3)),
        ]
    )


def model_sha(model: ArrayRecord) -> int:
    data = b"".join(a.data for a in model.values())
    return int(hashlib.sha256(data).hexdigest()[:12], 16)
