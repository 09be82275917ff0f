"""Which store a root names: a folder, or a URL whose scheme names a store factory.

Two tables, both by URL scheme and both naming code by dotted path, imported only when
a root asks for it (fsspec's ``known_implementations``): :data:`stores` maps a scheme
to the factory of a :class:`~fedbox.store.Store` (a folder path and ``file://`` to
LocalStore, the fsspec schemes to RemoteStore; a ``hub://`` store is one more entry),
and :data:`registry` maps each fsspec scheme to the :class:`Backend` RemoteStore uses.
So ``fedbox`` works without the ``remote`` extra, and a missing library is named with
the command that installs it. Storage options can also come from
``FEDBOX_STORAGE_OPTIONS`` (JSON).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from fedbox.errors import MissingBackend
from fedbox.store.backends import Backend
from fedbox.store.base import Store, WatchMode

__all__ = [
    "ENV_STORAGE_OPTIONS",
    "BackendSpec",
    "MissingBackend",
    "StoreFactory",
    "StoreIdentity",
    "StoreSpec",
    "get_backend",
    "open_store",
    "redact_url",
    "register_backend",
    "register_store",
    "registry",
    "resolve_storage_options",
    "scheme_options",
    "storage_options_from_env",
    "stores",
    "url_scheme",
]

ENV_STORAGE_OPTIONS = "FEDBOX_STORAGE_OPTIONS"
"""Environment variable holding storage options as a JSON object (see open_store)."""


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Where a backend lives and what it needs, resolved only on first use."""

    factory: str | Callable[[], Backend]
    """``"module:callable"`` (or the callable) returning a :class:`Backend`."""
    requires: tuple[str, ...] = ()
    """Importable module names the backend needs, besides fsspec."""
    extra: str = "remote"
    """The fedbox extra that installs them."""


def _webdav() -> Backend:
    from fedbox.store.backends import WebDAVBackend

    return WebDAVBackend(secure=False)


def _webdavs() -> Backend:
    from fedbox.store.backends import WebDAVBackend

    return WebDAVBackend(secure=True)


_registry: dict[str, BackendSpec] = {
    "s3": BackendSpec("fedbox.store.backends:S3Backend", ("s3fs",)),
    "gcs": BackendSpec("fedbox.store.backends:GCSBackend", ("gcsfs",)),
    "gs": BackendSpec("fedbox.store.backends:GCSBackend", ("gcsfs",)),
    "webdav": BackendSpec(_webdav, ("webdav4",)),
    "webdavs": BackendSpec(_webdavs, ("webdav4",)),
    "sftp": BackendSpec("fedbox.store.backends:SFTPBackend", ("sshfs",)),
    "memory": BackendSpec("fedbox.store.backends:MemoryBackend"),
    "gdrive": BackendSpec("fedbox.store.backends:GDriveBackend", ("pydrive2",), "gdrive"),
}
registry: Mapping[str, BackendSpec] = MappingProxyType(_registry)
"""Read-only view of the known URL schemes; add one with :func:`register_backend`."""


def register_backend(scheme: str, spec: BackendSpec, *, clobber: bool = False) -> None:
    """Make ``scheme://`` URLs open a RemoteStore with ``spec``'s backend."""
    scheme = scheme.lower()
    if scheme in _registry and not clobber:
        raise ValueError(f"{scheme}:// already has a backend; pass clobber=True to replace it")
    _registry[scheme] = spec
    _stores.setdefault(scheme, _FSSPEC)


class StoreFactory(Protocol):
    """Makes the store at ``root`` (a URL, or a folder path for the ``""`` entry).

    Every factory takes every keyword :func:`open_store` passes and uses those that mean
    something to it; ``watch_mode="events"`` is checked against the store's capabilities
    by :func:`open_store` itself.
    """

    def __call__(
        self,
        root: str | os.PathLike[str],
        *,
        watch_mode: WatchMode,
        poll_interval: float | None,
        max_poll_interval: float | None,
        retry_timeout: float | None,
        fsync: bool,
        **storage_options: Any,
    ) -> Store: ...


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """Where a store's factory lives, resolved only on first use."""

    factory: str | StoreFactory
    """``"module:callable"`` (or the callable) with the :class:`StoreFactory` signature."""
    options: bool = True
    """Whether the store takes storage options (merged over ``$FEDBOX_STORAGE_OPTIONS``);
    a folder takes none, and options given for one are a mistake."""
    identity: bool = False
    """Whether the store acts as the participant using it (a hub's login is per identity):
    its factory then also gets ``email=`` and ``state_dir=`` from :func:`open_store`'s
    ``identity``, unless the storage options name them."""


@dataclass(frozen=True, slots=True)
class StoreIdentity:
    """Who opens a store, for stores that act as someone (:attr:`StoreSpec.identity`)."""

    email: str
    state_dir: str | os.PathLike[str] | None = None
    """The participant's private state dir (None: ``$FEDBOX_HOME/{email}``)."""


_LOCAL = StoreSpec("fedbox.store.local:open_local", options=False)
_FSSPEC = StoreSpec("fedbox.store.remote:open_remote")
_stores: dict[str, StoreSpec] = {"": _LOCAL, "file": _LOCAL, **dict.fromkeys(_registry, _FSSPEC)}
_stores |= dict.fromkeys(("hub", "hubs"), StoreSpec("fedbox.hub.client:open_hub", identity=True))
stores: Mapping[str, StoreSpec] = MappingProxyType(_stores)
"""Read-only view of the store factories by URL scheme (``""``: a folder path); add one
with :func:`register_store`."""


def register_store(scheme: str, spec: StoreSpec, *, clobber: bool = False) -> None:
    """Make ``scheme://`` roots open with ``spec``'s factory (a ``hub://`` store, say)."""
    scheme = scheme.lower()
    if scheme in _stores and not clobber:
        raise ValueError(f"{scheme}:// already has a store; pass clobber=True to replace it")
    _stores[scheme] = spec


def _store_spec(root: str | os.PathLike[str]) -> tuple[str, StoreSpec]:
    scheme = url_scheme(root) or ""
    spec = _stores.get(scheme)
    if spec is None:
        known = ", ".join(f"{s}://" for s in sorted(_stores) if s)
        raise ValueError(f"no store backend for {scheme}:// (known: {known}, or a folder path)")
    return scheme, spec


def _load(factory: str | Callable[..., Any]) -> Callable[..., Any]:
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    return factory


def get_backend(scheme: str) -> Backend:
    """The backend for ``scheme``; MissingBackend names the pip command if a library is absent."""
    spec = _registry.get(scheme.lower())
    if spec is None:
        known = ", ".join(f"{s}://" for s in sorted(_registry))
        raise ValueError(f"no store backend for {scheme}:// (known: {known}, or a folder path)")
    for module in ("fsspec", *spec.requires):
        if importlib.util.find_spec(module) is None:
            raise MissingBackend(
                f"{scheme}:// stores need the {module!r} package: "
                f"pip install 'fedbox[{spec.extra}]'"
            )
    return _load(spec.factory)()


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def url_scheme(root: str | os.PathLike[str]) -> str | None:
    """The lowercase URL scheme of ``root``, or None for a plain path (``C:\\`` included)."""
    if not isinstance(root, str):
        return None
    match = _SCHEME.match(root)
    return match.group(1).lower() if match else None


def redact_url(root: str | os.PathLike[str]) -> str:
    """``root`` as it may be printed or logged: a URL loses its password."""
    text = os.fspath(root)
    if url_scheme(text) is None:
        return text
    url = urlsplit(text)
    if url.password is None:
        return text
    host = url.netloc.rpartition("@")[2]
    return urlunsplit(url._replace(netloc=f"{url.username}:***@{host}"))


def storage_options_from_env(scheme: str) -> dict[str, Any]:
    """Options for ``scheme`` from ``$FEDBOX_STORAGE_OPTIONS``.

    The variable holds one JSON object. Keys that name a scheme and hold an object are
    that scheme's section (``{"s3": {"endpoint_url": ...}, "sftp": {...}}``); other keys
    apply to every scheme. A section wins over the shared keys.
    """
    raw = os.environ.get(ENV_STORAGE_OPTIONS, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${ENV_STORAGE_OPTIONS} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"${ENV_STORAGE_OPTIONS} must be a JSON object, not {type(data).__name__}")
    return scheme_options(data, scheme)


def scheme_options(data: Mapping[str, Any], scheme: str) -> dict[str, Any]:
    """``scheme``'s options from a mapping laid out like ``$FEDBOX_STORAGE_OPTIONS``:
    keys naming a scheme and holding a mapping are sections, the rest are shared, and a
    section wins over the shared keys."""
    shared = {
        k: v for k, v in data.items() if not (k.lower() in _stores and isinstance(v, Mapping))
    }
    section = next(
        (v for k, v in data.items() if k.lower() == scheme and isinstance(v, Mapping)), {}
    )
    return {**shared, **section}


def resolve_storage_options(
    root: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The storage options for ``root``, merged as a command line sees them.

    From lowest to highest precedence: ``config`` (a project file, e.g. an app's
    ``[tool.fedbox].storage_options``), ``$FEDBOX_STORAGE_OPTIONS``, then ``flags``.
    ``config`` and the environment may hold per-scheme sections (see
    :func:`storage_options_from_env`). A folder takes no options: ``config`` is ignored
    for it (a project may name a remote root that a local ``--root`` overrides), while
    ``flags`` given with a folder are a mistake and raise ValueError.
    """
    scheme, spec = _store_spec(root)
    if not spec.options:
        if flags:
            names = ", ".join(sorted(flags))
            raise ValueError(f"storage options ({names}) apply to URL roots, not to {root}")
        return {}
    return {
        **scheme_options(config or {}, scheme),
        **storage_options_from_env(scheme),
        **(flags or {}),
    }


def open_store(
    root: str | os.PathLike[str],
    *,
    watch_mode: WatchMode = "auto",
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    retry_timeout: float | None = None,
    fsync: bool = True,
    identity: StoreIdentity | None = None,
    **storage_options: Any,
) -> Store:
    """The store at ``root``, made by the factory its URL scheme names in :data:`stores`:
    a folder path or ``file://`` URL gives a LocalStore, an fsspec URL a RemoteStore on
    the backend its scheme names.

    For a folder, ``watch_mode`` and ``poll_interval`` mean what they mean to LocalStore.
    For a URL, ``poll_interval`` is the fastest listing interval and ``max_poll_interval``
    the idle ceiling; ``retry_timeout`` bounds how long an operation waits out an outage;
    ``storage_options`` (merged over ``$FEDBOX_STORAGE_OPTIONS``) go to the backend.
    ``fsync=False`` makes a folder's writes cheaper but not crash-durable (throwaway
    simulations); remote backends decide durability themselves and ignore it.
    ``watch_mode="events"`` is refused for a store without change events.
    ``identity`` is who opens the store; stores that act as someone (a hub) get it as
    ``email``/``state_dir`` options, the rest ignore it.
    """
    scheme, spec = _store_spec(root)
    if spec.options:
        storage_options = {**storage_options_from_env(scheme), **storage_options}
    elif storage_options:
        names = ", ".join(sorted(storage_options))
        raise TypeError(f"storage options ({names}) apply to remote stores, not to {root}")
    if spec.identity and identity is not None and "email" not in storage_options:
        storage_options["email"] = identity.email
        if identity.state_dir is not None:
            storage_options.setdefault("state_dir", os.fspath(identity.state_dir))
    store: Store = _load(spec.factory)(
        root,
        watch_mode=watch_mode,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        retry_timeout=retry_timeout,
        fsync=fsync,
        **storage_options,
    )
    if watch_mode == "events" and not store.capabilities.events:
        store.close()
        raise ValueError(
            f"{scheme}:// stores have no change events; use watch_mode 'auto' or 'poll'"
        )
    return store
