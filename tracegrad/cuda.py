"""`tracegrad.cuda`: queries that answer honestly on a machine without a GPU.

The CUDA runtime (driver bindings, caching allocator, Triton launch) is not part
of this build yet; until it is, no CUDA device is ever reported."""
from __future__ import annotations


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def synchronize() -> None:
    from .device import NO_CUDA

    raise RuntimeError(NO_CUDA)


def memory_allocated() -> int:
    return 0


def max_memory_allocated() -> int:
    return 0


def empty_cache() -> None:
    return None
