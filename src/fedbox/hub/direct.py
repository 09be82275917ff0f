"""Downloads straight from the bucket: a 307 to a presigned URL instead of the bytes.

With ``direct_downloads_above`` set, the hub still decides who may read what (the access
check runs first, and the URL names one blob version and expires after
``direct_url_expiry`` seconds), but big files no longer pass through the hub's CPU and
network. The redirect carries the file's SHA-256, which the client checks the bucket's
bytes against. Small files (RPC messages) stay on the hub: for them a redirect would
cost a round trip more than it saves. Uploads never take this path: the hub checks
size, hash, quota and access on its way in.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Response

from fedbox.errors import NotFound
from fedbox.hub.context import Hub
from fedbox.hub.index import FileRow

__all__ = ["direct_download"]


def direct_download(
    hub: Hub, path: str, headers: Callable[[FileRow], dict[str, str]]
) -> Response | None:
    """The redirect to ``path``'s blob, or None to serve it from the hub. ``headers``
    gives a row's version headers (see ``routes_files``), sent with the redirect."""
    threshold = hub.settings.direct_downloads_above
    if threshold is None:
        return None
    row = hub.index.get(path)
    if row is None:
        raise NotFound("not found", path)
    if row.size < threshold:
        return None
    url = hub.index.blobs.signed_url(row.blob, hub.settings.direct_url_expiry)
    if url is None:
        return None
    return Response(status_code=307, headers={**headers(row), "Location": url})
