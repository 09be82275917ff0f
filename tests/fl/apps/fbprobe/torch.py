"""A stand-in for PyTorch's thread setting, so tests see what fedbox tells torch without
installing it: like torch, it starts with one thread per core."""

import os

_threads = os.cpu_count() or 1


def set_num_threads(count: int) -> None:
    global _threads
    _threads = int(count)


def get_num_threads() -> int:
    return _threads
