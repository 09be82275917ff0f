"""One error tree: every public error is defined in fedbox.errors, drawn in its docstring,
and still importable from where users import it."""

from __future__ import annotations

import importlib

import pytest

import fedbox.errors

# where users import each error from (besides fedbox.errors)
ALSO_EXPORTED_BY = {
    "UntrustedKey": ["fedbox.crypto", "fedbox.crypto.trust"],
    "AppConfigError": ["fedbox.fl", "fedbox.fl.config"],
    "MissingBackend": ["fedbox.store", "fedbox.store.registry"],
    "InvalidPermissionFile": [
        "fedbox.datasite",
        "fedbox.datasite.permissions",
        "fedbox.datasite.permission_files",
    ],
}


@pytest.mark.parametrize("name", fedbox.errors.__all__)
def test_each_error_is_defined_in_errors_and_drawn_in_its_tree(name: str) -> None:
    error = getattr(fedbox.errors, name)
    assert error.__module__ == "fedbox.errors"
    assert issubclass(error, fedbox.errors.FedboxError)
    assert f" {name}" in fedbox.errors.__doc__


@pytest.mark.parametrize(
    ("name", "module"), [(n, m) for n, ms in ALSO_EXPORTED_BY.items() for m in ms]
)
def test_moved_errors_are_still_importable_where_they_were(name: str, module: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(fedbox.errors, name)


def test_every_public_error_class_of_fedbox_lives_in_errors() -> None:
    for module in ("fedbox.crypto", "fedbox.fl", "fedbox.store", "fedbox.datasite", "fedbox.rpc"):
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", []):
            value = getattr(mod, name)
            if isinstance(value, type) and issubclass(value, Exception):
                assert value.__module__ == "fedbox.errors", f"{module}.{name}"


def test_app_config_error_is_a_fedbox_error_and_a_value_error() -> None:
    err = fedbox.errors.AppConfigError("no pyproject.toml")
    assert isinstance(err, fedbox.errors.FedboxError)
    assert isinstance(err, ValueError)
