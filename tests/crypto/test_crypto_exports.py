"""``fedbox.crypto`` re-exports exactly the public names of its modules."""

from __future__ import annotations

import importlib

import fedbox.crypto

# import_module, not attribute access: the function ``seal`` shadows the module ``seal``.
MODULES = ["keys", "seal", "stream", "trust"]


def test_all_is_the_union_of_the_modules_public_names() -> None:
    names: list[str] = []
    for name in MODULES:
        names += importlib.import_module(f"fedbox.crypto.{name}").__all__
    assert len(set(fedbox.crypto.__all__)) == len(fedbox.crypto.__all__)
    assert set(fedbox.crypto.__all__) == set(names)
    for name in fedbox.crypto.__all__:
        assert getattr(fedbox.crypto, name) is not None
