"""Layer 4: envelopes, sending, futures, handlers, expiry, cleanup and the audit log."""

from fedbox.rpc.app import App, Handler
from fedbox.rpc.audit import AuditLog, AuditRecord
from fedbox.rpc.body import Body, Shared
from fedbox.rpc.box import DEFAULT_CLEANUP_EXPIRY, DEFAULT_EXPIRY, Box
from fedbox.rpc.cleanup import CleanupReport, cleanup
from fedbox.rpc.connect import connect
from fedbox.rpc.envelope import MAGIC, Header, read_envelope, read_header, write_envelope
from fedbox.rpc.futures import Future, FutureRecord, FutureStore
from fedbox.rpc.messages import Request, Response
from fedbox.rpc.outgoing import Batch
from fedbox.rpc.payload import Payload
from fedbox.rpc.peers import keys_missing, wait_for_keys
from fedbox.rpc.quarantine import quarantine
from fedbox.rpc.sealing import did_path, publish_keys, read_published
from fedbox.rpc.status import Status

__all__ = [
    "DEFAULT_CLEANUP_EXPIRY",
    "DEFAULT_EXPIRY",
    "MAGIC",
    "App",
    "AuditLog",
    "AuditRecord",
    "Batch",
    "Body",
    "Box",
    "CleanupReport",
    "Future",
    "FutureRecord",
    "FutureStore",
    "Handler",
    "Header",
    "Payload",
    "Request",
    "Response",
    "Shared",
    "Status",
    "cleanup",
    "connect",
    "did_path",
    "keys_missing",
    "publish_keys",
    "quarantine",
    "read_envelope",
    "read_header",
    "read_published",
    "wait_for_keys",
    "write_envelope",
]
