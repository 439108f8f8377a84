"""`tracegrad.cuda`: queries that answer honestly on a machine without a GPU.

is_available() and device_count() ask the CUDA driver (through cuda-bindings,
imported only here and only when asked); without the bindings, a driver or a
device they answer False and 0, and never raise."""
from __future__ import annotations


def is_available() -> bool:
    from .kernels.cuda import driver

    return driver.is_available()


def device_count() -> int:
    from .kernels.cuda import driver

    return driver.device_count()


def synchronize() -> None:
    from .device import NO_CUDA

    raise RuntimeError(NO_CUDA)


def memory_allocated() -> int:
    return 0


def max_memory_allocated() -> int:
    return 0


def empty_cache() -> None:
    return None
