"""Per-scheme adapters: how fedbox builds each fsspec filesystem and where backends differ.

fsspec gives one interface but not one set of guarantees: an S3 PUT appears whole, a
WebDAV or SFTP upload is visible while it is being written; ``mv`` is a rename on SFTP
but a copy plus delete in fsspec's generic code (so WebDAV uses its own MOVE); deleting
a missing S3 key succeeds silently. A :class:`Backend` records those facts and supplies
the few operations that differ. Optional libraries are imported only in ``connect``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote

__all__ = [
    "Backend",
    "GCSBackend",
    "GDriveBackend",
    "MemoryBackend",
    "S3Backend",
    "SFTPBackend",
    "WebDAVBackend",
]

FileSystem = Any
"""An ``fsspec.AbstractFileSystem``; typed loosely because fsspec is an optional extra."""


def _hostport(url: SplitResult) -> str:
    return url.netloc.rpartition("@")[2]


class Backend:
    """The defaults suit object stores: whole-object PUT, one listing per subtree."""

    atomic_put: ClassVar[bool] = True
    """An upload becomes visible only when complete (else: temp name, then rename)."""
    flat: ClassVar[bool] = True
    """``find`` lists a whole subtree cheaply (else: fedbox walks folder by folder)."""
    reconnect: ClassVar[bool] = False
    """A dropped connection is not re-opened by the library: rebuild the filesystem."""
    strict_delete: ClassVar[bool] = False
    """Deleting a missing path succeeds silently: check first to report NotFound."""

    def root(self, url: SplitResult) -> str:
        """The filesystem path of the store root named by ``url``."""
        return f"{url.netloc}/{url.path.strip('/')}".strip("/")

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        raise NotImplementedError

    @property
    def lists_subtrees(self) -> bool:
        """Whether one request lists a whole subtree (``find``); else each folder costs one."""
        return self.flat

    def is_file(self, fs: FileSystem, path: str) -> bool:
        """Whether a file is at ``path``; FileNotFoundError when nothing is.

        Not fsspec's ``isfile``, which reads a dropped connection as "no file".
        """
        return fs.info(path).get("type") == "file"

    def find(self, fs: FileSystem, path: str) -> list[dict[str, Any]] | None:
        """Every file under ``path`` in one request, or None: walk it folder by folder."""
        if not self.flat:
            return None
        return list(fs.find(path, withdirs=False, detail=True).values())

    def read(self, fs: FileSystem, path: str) -> bytes:
        """The whole file; FileNotFoundError if absent."""
        return fs.cat_file(path)

    def probe(self, fs: FileSystem, path: str, limit: int) -> bytes | None:
        """Whether a file is at ``path`` (FileNotFoundError if not), in one request: a
        waiting caller's lookup of a reply by name. Returns the content when that request
        brought it (at most ``limit`` bytes), else None."""
        if not self.is_file(fs, path):
            raise FileNotFoundError(2, "not a file", path)
        return None

    def upload(self, fs: FileSystem, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``; FileNotFoundError if the parent folder is missing."""
        fs.pipe_file(path, data)

    def rename(self, fs: FileSystem, src: str, dst: str) -> None:
        """Move ``src`` over ``dst``; FileNotFoundError if ``src`` or the folder is missing."""
        fs.mv(src, dst)

    def makedirs(self, fs: FileSystem, path: str) -> None:
        fs.makedirs(path, exist_ok=True)

    def copy(self, fs: FileSystem, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` on the server (S3 CopyObject, GCS rewrite, WebDAV COPY,
        ``cp`` over SSH); FileNotFoundError if ``src`` or the folder is missing."""
        fs.cp_file(src, dst)

    def remove_empty_folder(self, fs: FileSystem, path: str) -> bool:
        """Remove the folder at ``path`` if empty. Object stores have no folders to leave
        behind; a WebDAV DELETE of a collection is recursive, so it could take a file
        written meanwhile: both keep what they have (False)."""
        return False

    def close(self, fs: FileSystem) -> None:
        """Release connections; the library's finalizers cover anything left."""

    def missing_container(self, fs: FileSystem, root: str) -> str | None:
        """The bucket (or like container) that ``root`` lives in, if it does not exist.

        Asked once per connection: without it, a missing bucket reads as an empty store
        whose files are all missing. None when there is no such thing, it exists, or we
        may not ask (the operations themselves then report what is wrong).
        """
        return None


def _bucket_root(url: SplitResult) -> str:
    if not url.netloc:
        raise ValueError(f"{url.scheme}:// needs a bucket: {url.scheme}://BUCKET/optional/prefix")
    return f"{url.netloc}/{url.path.strip('/')}".strip("/")


class S3Backend(Backend):
    """S3 and S3-compatible stores (MinIO, Ceph, moto) through s3fs.

    fedbox retries outages itself (with one outage log line, and a budget the caller
    sets), so botocore's and s3fs's own retries are turned down to one attempt.
    """

    strict_delete = True

    def root(self, url: SplitResult) -> str:
        return _bucket_root(url)

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from s3fs import S3FileSystem

        opts = dict(options)
        retries = int(opts.pop("retries", 1))
        opts.setdefault("skip_instance_cache", True)
        opts.setdefault("use_listings_cache", False)
        config = dict(opts.pop("config_kwargs", None) or {})
        config.setdefault("connect_timeout", 5)
        config.setdefault("read_timeout", 60)
        config.setdefault("retries", {"max_attempts": 1})
        fs = S3FileSystem(config_kwargs=config, **opts)
        fs.retries = retries
        return fs

    def is_file(self, fs: FileSystem, path: str) -> bool:
        """One HEAD request (s3fs's ``info`` also lists, to find folders)."""
        bucket, key, _ = fs.split_path(path)
        fs.call_s3("head_object", Bucket=bucket, Key=key)
        return True

    def find(self, fs: FileSystem, path: str) -> list[dict[str, Any]] | None:
        """One ListObjectsV2 (s3fs's ``find`` adds a HEAD and a listing when it is empty)."""
        from fsspec.asyn import sync

        found = sync(fs.loop, fs._lsdir, path, delimiter="")
        return [o for o in found if o.get("type") == "file" and not o["name"].endswith("/")]

    def read(self, fs: FileSystem, path: str) -> bytes:
        """One GET (s3fs's ``cat_file`` sends a HEAD first, to size parallel downloads);
        objects larger than one block are fetched again, in parallel ranges."""
        limit = fs.default_block_size if fs.max_concurrency > 1 else None
        data = _s3_get(fs, path, limit)
        return fs.cat_file(path) if data is None else data

    def probe(self, fs: FileSystem, path: str, limit: int) -> bytes | None:
        """One GET, read only if the object is small."""
        return _s3_get(fs, path, limit)

    def makedirs(self, fs: FileSystem, path: str) -> None:
        """Object stores have no folders to create."""

    def missing_container(self, fs: FileSystem, root: str) -> str | None:
        """One HeadBucket: 404 means missing; 403 (credentials that may use objects but
        not the bucket itself) says nothing, so it is left to the object requests."""
        bucket = root.split("/", 1)[0]
        try:
            fs.call_s3("head_bucket", Bucket=bucket)
        except FileNotFoundError:
            return bucket
        except PermissionError:
            return None
        return None


def _s3_get(fs: FileSystem, path: str, limit: int | None) -> bytes | None:
    """The object's bytes from one GET, or None (connection dropped unread) when it is
    larger than ``limit``; FileNotFoundError if absent."""
    from fsspec.asyn import sync

    bucket, key, version = fs.split_path(path)

    async def get() -> bytes | None:
        extra = {"VersionId": version} if version else {}
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **extra)
        body = response["Body"]
        try:
            if limit is not None and int(response.get("ContentLength") or 0) > limit:
                return None
            return await body.read()
        finally:
            body.close()

    return sync(fs.loop, get)


class GCSBackend(Backend):
    """Google Cloud Storage through gcsfs (objects appear whole, like S3)."""

    strict_delete = True

    def root(self, url: SplitResult) -> str:
        return _bucket_root(url)

    def makedirs(self, fs: FileSystem, path: str) -> None:
        """Object stores have no folders to create."""

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from gcsfs import GCSFileSystem

        opts = dict(options)
        opts.setdefault("skip_instance_cache", True)
        opts.setdefault("use_listings_cache", False)
        return GCSFileSystem(**opts)


class WebDAVBackend(Backend):
    """WebDAV through webdav4: ``webdav://`` speaks http, ``webdavs://`` https.

    Credentials come from ``auth=(user, password)``, ``username``/``password`` options or
    the URL's user info. Uploads go to a dot-file and are MOVEd into place, the only
    atomic step WebDAV offers; webdav4's ``mv`` would copy and delete instead.
    """

    atomic_put = False
    flat = False

    def __init__(self, secure: bool) -> None:
        self.secure = secure
        self.deep_listing = True

    @property
    def lists_subtrees(self) -> bool:
        return self.deep_listing

    def find(self, fs: FileSystem, path: str) -> list[dict[str, Any]] | None:
        """One ``PROPFIND Depth: infinity`` where the server allows it (many refuse with
        403; then fedbox walks, one PROPFIND per folder)."""
        if not self.deep_listing:
            return None
        try:
            with _webdav_errors():
                result = fs.client.propfind(path, data=_PROPS, headers={"Depth": "infinity"})
        except FileNotFoundError:
            raise
        except Exception as exc:
            if getattr(exc, "status_code", None) != 403:
                raise
            self.deep_listing = False
            return None
        from webdav4.fsspec import translate_info

        base = fs.client.base_url
        return [
            translate_info({"name": resp.path_relative_to(base), **resp.properties.as_dict()})
            for resp in result.responses.values()
            if resp.properties.resource_type == "file"
        ]

    def root(self, url: SplitResult) -> str:
        return url.path.strip("/")

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from webdav4.fsspec import WebdavFileSystem

        opts = dict(options)
        auth = opts.pop("auth", None)
        user = opts.pop("username", None) or (unquote(url.username) if url.username else None)
        password = opts.pop("password", None) or (unquote(url.password) if url.password else "")
        if auth is None and user is not None:
            auth = (user, password)
        elif isinstance(auth, list):
            auth = tuple(auth)
        opts.setdefault("retry", False)
        opts.setdefault("timeout", 30)
        base = f"{'https' if self.secure else 'http'}://{_hostport(url)}"
        return WebdavFileSystem(base, auth=auth, **opts)

    def upload(self, fs: FileSystem, path: str, data: bytes) -> None:
        with _webdav_errors():
            fs.client.upload_fileobj(io.BytesIO(data), path, overwrite=True, size=len(data))

    def copy(self, fs: FileSystem, src: str, dst: str) -> None:
        with _webdav_errors():
            fs.client.copy(src, dst, overwrite=True)

    def rename(self, fs: FileSystem, src: str, dst: str) -> None:
        with _webdav_errors():
            fs.client.move(src, dst, overwrite=True)


_PROPS = (
    '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop>'
    "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/></d:prop></d:propfind>"
)
"""Only what an Entry needs: computing etags and content types is most of a server's work."""


@contextmanager
def _webdav_errors() -> Iterator[None]:
    """A missing resource or parent folder (404, 409 Conflict) becomes FileNotFoundError."""
    try:
        yield
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        status = getattr(exc, "status_code", None)
        if names & {"ResourceNotFound", "ResourceConflict"} or status in (404, 409):
            raise FileNotFoundError(2, f"missing resource or parent folder: {exc}") from exc
        raise


class SFTPBackend(Backend):
    """SFTP through sshfs (asyncssh), maintained under the fsspec organisation.

    Options go to ``asyncssh.connect`` (``username``, ``password``, ``client_keys``,
    ``known_hosts``...). The server's host key is checked against ``~/.ssh/known_hosts``
    unless ``known_hosts`` says otherwise. Uploads go to a dot-file, then
    ``posix-rename`` replaces the target in one step. A dropped connection is not
    re-opened by sshfs, so fedbox rebuilds the filesystem after transport failures.
    """

    atomic_put = False
    flat = False
    reconnect = True

    def root(self, url: SplitResult) -> str:
        return url.path.rstrip("/")

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from sshfs import SSHFileSystem

        opts = dict(options)
        if url.username:
            opts.setdefault("username", unquote(url.username))
        if url.password:
            opts.setdefault("password", unquote(url.password))
        if isinstance(opts.get("client_keys"), str):
            opts["client_keys"] = [opts["client_keys"]]
        opts.setdefault("known_hosts", ())
        opts.setdefault("skip_instance_cache", True)
        opts.setdefault("timeout", 10)
        if not url.hostname:
            raise ValueError("sftp:// needs a host: sftp://[user@]host[:port]/path")
        return SSHFileSystem(url.hostname, port=url.port or 22, **opts)

    def upload(self, fs: FileSystem, path: str, data: bytes) -> None:
        with fs.open(path, "wb") as f:
            f.write(data)

    def remove_empty_folder(self, fs: FileSystem, path: str) -> bool:
        """SFTP's RMDIR refuses a folder that holds anything, in one step."""
        fs.rmdir(path)
        return True

    def close(self, fs: FileSystem) -> None:
        fs._finalize(fs.loop, fs._pool, fs._stack)


class MemoryBackend(Backend):
    """fsspec's memory filesystem with a store of its own.

    Upstream, every ``MemoryFileSystem`` shares one class-level dict, so unrelated stores
    (and tests) would see each other's files. Here each RemoteStore gets an empty one;
    to let two stores share files, pass the first one's ``fs`` to the second.
    """

    def root(self, url: SplitResult) -> str:
        return f"/{url.netloc}/{url.path.strip('/')}".rstrip("/")

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from fsspec.implementations.memory import MemoryFileSystem

        fs = MemoryFileSystem(skip_instance_cache=True, **options)
        fs.store = {}
        fs.pseudo_dirs = [""]
        return fs

    def makedirs(self, fs: FileSystem, path: str) -> None:
        """Memory paths need no folders."""

    def probe(self, fs: FileSystem, path: str, limit: int) -> bytes | None:
        data = fs.cat_file(path)
        return data if len(data) <= limit else None


class GDriveBackend(Backend):
    """Google Drive through PyDrive2's fsspec filesystem (``gdrive://root/folder``).

    A Drive upload creates the file whole, so no rename is needed (Drive allows two files
    with one name, which a rename scheme could produce). Listings carry no modification
    time, so the cleanup job cannot age Drive files; see the README.
    """

    def root(self, url: SplitResult) -> str:
        return f"{url.netloc}/{url.path.strip('/')}".strip("/")

    def connect(self, url: SplitResult, options: dict[str, Any]) -> FileSystem:
        from pydrive2.fs import GDriveFileSystem

        root = self.root(url)
        if not root:
            raise ValueError("gdrive:// needs a folder: gdrive://root/FOLDER or gdrive://FOLDER_ID")
        return GDriveFileSystem(root, **options)
