"""Layer 6: HTTP over files. An httpx transport on the caller's side, an ASGI (or proxy)
runner on the owner's; every request and response is a fedbox message on app
``{name}``, endpoint ``http``, encrypted end to end like any other. Needs
``pip install 'fedbox[bridge]'`` (httpx)."""

from fedbox.bridge.policy import Allowlist, AllowRule, RateLimit, parse_rate
from fedbox.bridge.serving import DEFAULT_MAX_CONCURRENT, SENDER_HEADER, Bridge, serve
from fedbox.bridge.transport import ENDPOINT, AsyncTransport, Transport
from fedbox.bridge.upstream import AsgiUpstream, ProxyUpstream

__all__ = [
    "DEFAULT_MAX_CONCURRENT",
    "ENDPOINT",
    "SENDER_HEADER",
    "AllowRule",
    "Allowlist",
    "AsgiUpstream",
    "AsyncTransport",
    "Bridge",
    "ProxyUpstream",
    "RateLimit",
    "Transport",
    "parse_rate",
    "serve",
]
