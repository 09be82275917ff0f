"""Packages: every member checked before anything is written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from fedbox.rds import PackageError
from fedbox.rds.package import extract_checked, pack, read_package, unpack


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "myjob"
    (folder / "lib").mkdir(parents=True)
    (folder / "main.py").write_text("print('hi')\n")
    (folder / "lib" / "util.py").write_text("X = 1\n")
    return folder


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _manifest_for(files: dict[str, bytes]) -> bytes:
    import hashlib

    return json.dumps(
        {
            "name": "evil",
            "entry": "python main.py",
            "dataset": "d",
            "files": [
                {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                for p, b in files.items()
            ],
        }
    ).encode()


def test_round_trip_keeps_every_file_and_the_manifest(code: Path, tmp_path: Path) -> None:
    data, manifest = pack(code, entry="python main.py", dataset="cells")
    assert manifest.name == "myjob" and [f.path for f in manifest.files] == [
        "lib/util.py",
        "main.py",
    ]
    out = tmp_path / "out"
    assert unpack(data, out) == manifest
    assert (out / "lib" / "util.py").read_text() == "X = 1\n"


def test_digest_changes_with_one_launcher_byte(code: Path) -> None:
    _, first = pack(code, entry="python main.py", dataset="cells")
    _, other_entry = pack(code, entry="python  main.py", dataset="cells")
    (code / "main.py").write_text("print('hi!')\n")
    _, changed = pack(code, entry="python main.py", dataset="cells")
    assert len({first.digest(), other_entry.digest(), changed.digest()}) == 3


def _bad_packages() -> dict[str, bytes]:
    good = b"print(1)\n"
    manifest = _manifest_for({"main.py": good})
    dotdot = tarfile.TarInfo("code/../../escape.py")
    absolute = tarfile.TarInfo("/tmp/escape.py")
    link = tarfile.TarInfo("code/main.py")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    hard = tarfile.TarInfo("code/main.py")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "manifest.json"
    return {
        "dotdot": _tar(
            [_file("manifest.json", manifest), _file("code/main.py", good), (dotdot, good)]
        ),
        "absolute": _tar(
            [_file("manifest.json", manifest), _file("code/main.py", good), (absolute, good)]
        ),
        "symlink": _tar([_file("manifest.json", manifest), (link, None)]),
        "hardlink": _tar([_file("manifest.json", manifest), (hard, None)]),
        "mismatch": _tar([_file("manifest.json", manifest), _file("code/main.py", b"evil()\n")]),
        "unlisted": _tar(
            [
                _file("manifest.json", manifest),
                _file("code/main.py", good),
                _file("code/extra.py", good),
            ]
        ),
        "missing": _tar([_file("manifest.json", manifest)]),
        "no-manifest": _tar([_file("code/main.py", good)]),
        "not-a-tar": b"hello, this is not a tar archive at all" * 20,
    }


@pytest.mark.parametrize("case", sorted(_bad_packages()))
def test_bad_package_is_refused_before_anything_is_written(case: str, tmp_path: Path) -> None:
    out = tmp_path / "sandbox" / "out"
    with pytest.raises(PackageError):
        unpack(_bad_packages()[case], out)
    assert not out.exists()
    assert not (tmp_path / "escape.py").exists()


def test_size_cap_is_configurable(code: Path) -> None:
    data, _ = pack(code, entry="python main.py", dataset="d")
    with pytest.raises(PackageError, match="cap"):
        read_package(data, max_size=len(data) - 1)
    with pytest.raises(PackageError, match="cap"):
        pack(code, entry="python main.py", dataset="d", max_size=5)


def test_links_in_the_code_folder_are_refused_when_packing(code: Path) -> None:
    (code / "data").symlink_to("/etc")
    with pytest.raises(PackageError, match="is a link"):
        pack(code, entry="python main.py", dataset="d")


def test_results_extraction_refuses_dotdot_before_writing(tmp_path: Path) -> None:
    bad = _tar([_file("output/ok.txt", b"ok"), _file("output/../../x.txt", b"x")])
    out = tmp_path / "a" / "out"
    with pytest.raises(PackageError):
        extract_checked(bad, out)
    assert not out.exists()
