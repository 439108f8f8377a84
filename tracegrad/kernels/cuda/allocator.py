"""A caching allocator for device memory, the design torch's uses, kept small.

cuMemAlloc and cuMemFree are slow (cuMemFree also synchronises the device), and a
training step frees and re-allocates the same sizes over and over. So:

* sizes are rounded up into classes: below 1 MiB to a multiple of 512 bytes, above
  to a multiple of 2 MiB. A class holds blocks of exactly its size, so a freed
  block fits the next request of its class without splitting.
* `free` does not call the driver: the block goes to its class's free list, and
  the next `malloc` of that class takes it back. This needs no synchronisation
  because everything runs on one stream: work queued after the reuse runs after
  the work queued before the free, in stream order.
* when cuMemAlloc runs out of memory, the cached blocks are released
  (`empty_cache`) and the allocation is tried once more before giving up.

The driver is anything with mem_alloc(nbytes) -> ptr and mem_free(ptr), which
is how the tests run it without a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .driver import OutOfMemoryError

SMALL = 1 << 20          # requests below this come from the small classes
SMALL_ROUND = 512        # small classes: multiples of 512 bytes
LARGE_ROUND = 2 << 20    # large classes: multiples of 2 MiB


class MemoryDriver(Protocol):
    def mem_alloc(self, nbytes: int) -> int: ...

    def mem_free(self, ptr: int) -> None: ...


@dataclass
class Block:
    """One device allocation handed out: its address, its class size and what was asked for."""

    ptr: int
    size: int
    requested: int


def round_size(nbytes: int) -> int:
    """The size class of a request."""
    if nbytes <= 0:
        return 0
    step = SMALL_ROUND if nbytes < SMALL else LARGE_ROUND
    return -(-nbytes // step) * step


def _fmt(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.2f} {unit}" if unit != "bytes" else f"{n} bytes"
        n /= 1024
    return str(n)


class CachingAllocator:
    def __init__(self, driver: MemoryDriver):
        self.driver = driver
        self._free: dict[int, list[int]] = {}     # size class -> cached block addresses
        self._live: dict[int, Block] = {}         # address -> block in use
        self.allocated = 0                        # bytes in blocks handed out
        self.reserved = 0                         # bytes held from the driver (in use + cached)
        self.peak_allocated = 0
        self.driver_allocs = 0
        self.reuses = 0

    def malloc(self, nbytes: int) -> Block:
        size = round_size(nbytes)
        if size == 0:
            return Block(0, 0, 0)
        cached = self._free.get(size)
        if cached:
            ptr = cached.pop()
            self.reuses += 1
        else:
            ptr = self._driver_alloc(size, nbytes)
        block = Block(ptr, size, nbytes)
        self._live[ptr] = block
        self.allocated += size
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        return block

    def _driver_alloc(self, size: int, nbytes: int) -> int:
        try:
            ptr = self.driver.mem_alloc(size)
        except OutOfMemoryError:
            self.empty_cache()  # give the cached blocks back and try once more
            try:
                ptr = self.driver.mem_alloc(size)
            except OutOfMemoryError:
                raise OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate {_fmt(nbytes)}. {_fmt(self.allocated)} is allocated "
                    f"by tracegrad and {_fmt(self.reserved - self.allocated)} was cached and has been released."
                ) from None
        self.driver_allocs += 1
        self.reserved += size
        return ptr

    def free(self, block: Block) -> None:
        if block.size == 0:
            return
        live = self._live.pop(block.ptr, None)
        if live is None:
            raise RuntimeError(f"free of a block the allocator does not hold (address {block.ptr:#x}): freed twice?")
        self.allocated -= live.size
        self._free.setdefault(live.size, []).append(live.ptr)

    def empty_cache(self) -> None:
        """Return every cached (free) block to the driver; blocks in use stay."""
        for size, ptrs in self._free.items():
            for ptr in ptrs:
                self.driver.mem_free(ptr)
                self.reserved -= size
        self._free.clear()

    @property
    def cached(self) -> int:
        return self.reserved - self.allocated

    def stats(self) -> dict[str, int]:
        return {"allocated_bytes": self.allocated, "reserved_bytes": self.reserved, "cached_bytes": self.cached,
                "peak_allocated_bytes": self.peak_allocated, "driver_allocs": self.driver_allocs,
                "reuses": self.reuses, "live_blocks": len(self._live)}
