"""``syft://{email}/{path}`` URLs: a datasite-relative way to name files across stores."""

from __future__ import annotations

from pathlib import PurePosixPath

from fedbox.datasite.identity import validate_email
from fedbox.datasite.paths import datasite_dir
from fedbox.errors import InvalidIdentity

__all__ = ["SCHEME", "path_to_url", "url_to_path"]

SCHEME = "syft://"


def _clean_relative(raw: str, original: str) -> PurePosixPath:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw) or "\\" in raw:
        raise InvalidIdentity(f"{original!r} contains a control character or backslash", original)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidIdentity(f"{original!r} climbs out of its datasite with '..'", original)
    return PurePosixPath(*parts) if parts else PurePosixPath()


def url_to_path(url: str) -> PurePosixPath:
    """``syft://a@x.org/public/f.csv`` -> ``datasites/a@x.org/public/f.csv`` (store-relative)."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise InvalidIdentity(f"{url!r} is not a syft:// URL", url)
    email, _, rest = url[len(SCHEME) :].partition("/")
    return datasite_dir(validate_email(email)) / _clean_relative(rest, url)


def path_to_url(path: str | PurePosixPath) -> str:
    """The reverse of :func:`url_to_path`; only paths inside ``datasites/{email}`` have one."""
    rel = _clean_relative(str(path), str(path))
    if len(rel.parts) < 2 or rel.parts[0] != "datasites":
        raise InvalidIdentity(f"{str(path)!r} is not inside datasites/{{email}}/", str(path))
    email = validate_email(rel.parts[1])
    rest = "/".join(rel.parts[2:])
    return f"{SCHEME}{email}/{rest}"
