"""The layering rule and the exported names stay honest."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import fedbox

LAYERS = {
    "errors": 0,
    "sizes": 0,
    "datasite": 1,
    "store": 2,
    "crypto": 3,
    "rpc": 4,
    "hub": 5,
    "bridge": 6,
    "rds": 7,
    "fl": 8,
    "cli": 9,
    "testing": 9,
    "__main__": 9,
}
SRC = Path(fedbox.__file__).parent


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "fedbox" else None


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_from_a_higher_layer(path: Path) -> None:
    rel = path.relative_to(SRC)
    if rel.parts == ("__init__.py",):
        return
    own = LAYERS[rel.parts[0].removesuffix(".py")]
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            layer = _layer(name)
            assert layer is None or layer <= own, f"{rel} (layer {own}) imports {name}"


def test_all_lists_name_real_attributes() -> None:
    for info in pkgutil.walk_packages(fedbox.__path__, "fedbox."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        missing = [n for n in exported if not hasattr(module, n)]
        assert not missing, f"{info.name}.__all__ names missing attributes: {missing}"


def test_top_level_exports_the_everyday_api() -> None:
    for name in ("connect", "Request", "Response", "Future", "FedboxError", "ResponseTimeout"):
        assert name in fedbox.__all__
