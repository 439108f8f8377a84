"""A simulated CUDA device: the real runtime on host memory, kernels under Triton's interpreter.

Everything above the driver is the code a GPU runs: CUDA tensors, the device
dispatcher, the generated Triton kernels and how they are launched, the caching
allocator. Only two things change:

    SimulatedDriver   mem_alloc hands out NumPy buffers (their host addresses are the
                      "device pointers"), copies are NumPy copies, synchronize does nothing
    interpret=True    kernels run under Triton's interpreter (interpret.py adapts the
                      buffers), one program instance at a time: slow, but the same source

Switch it on for a whole process with the environment variable
`TRACEGRAD_SIMULATE_CUDA=1` (read when the runtime is first used), or for a block:

    with tracegrad.kernels.cuda.simulate.simulated():
        x = tracegrad.ones(3, device="cuda")

Without either, `device='cuda'` on a machine with no GPU raises the usual
RuntimeError: simulation is never chosen silently.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np

ENV = "TRACEGRAD_SIMULATE_CUDA"


class SimulatedDriver:
    """The driver interface of driver.Driver over host memory.

    capacity bounds the bytes held, so out-of-memory handling (the allocator's
    release-and-retry) behaves as on a device."""

    index = 0

    def __init__(self, capacity: int = 4 << 30):
        self.capacity = capacity
        self.used = 0
        self._mem: dict[int, np.ndarray] = {}  # pointer -> the host bytes behind it
        self.allocs = self.frees = 0

    def mem_alloc(self, nbytes: int) -> int:
        from .driver import OutOfMemoryError

        if self.used + nbytes > self.capacity:
            raise OutOfMemoryError("CUDA error: cuMemAlloc failed with CUDA_ERROR_OUT_OF_MEMORY (simulated)")
        # 64-byte alignment, as Triton assumes of device pointers it specialises on (16 at least)
        raw = np.empty(nbytes + 64, np.uint8)
        start = (-raw.ctypes.data) % 64
        mem = raw[start:start + nbytes]
        ptr = mem.ctypes.data
        self._mem[ptr] = mem
        self.used += nbytes
        self.allocs += 1
        return ptr

    def mem_free(self, ptr: int) -> None:
        self.used -= self._mem.pop(ptr).nbytes
        self.frees += 1

    def host_memory(self, ptr: int, nbytes: int) -> np.ndarray:
        """The host bytes behind an allocation (the interpreter reads and writes them)."""
        mem = self._mem[ptr]
        if nbytes > mem.nbytes:
            raise ValueError(f"{nbytes} bytes asked of a {mem.nbytes}-byte allocation")
        return mem[:nbytes]

    def copy_to_device(self, dst: int, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        if host.nbytes:
            self.host_memory(dst, host.nbytes)[...] = host.reshape(-1).view(np.uint8)

    def copy_to_host(self, host: np.ndarray, src: int) -> None:
        if not host.flags.c_contiguous:
            raise ValueError("copies land in contiguous host arrays")
        if host.nbytes:
            host.reshape(-1).view(np.uint8)[...] = self.host_memory(src, host.nbytes)

    def synchronize(self) -> None:
        return None  # the interpreter runs each launch to completion

    def name(self) -> str:
        return "Simulated CUDA device (Triton interpreter on host memory)"

    def total_memory(self) -> int:
        return self.capacity


_FORCED: list[bool] = []  # innermost simulated() block's choice, if any


def enabled() -> bool:
    """Whether the CUDA runtime is (to be) the simulated one."""
    if _FORCED:
        return _FORCED[-1]
    return os.environ.get(ENV, "") not in ("", "0")


@contextlib.contextmanager
def simulated(on: bool = True) -> Iterator[None]:
    """Use a fresh simulated CUDA runtime inside the block (on=False: none at all).

    The runtime in use before the block comes back afterwards; CUDA tensors made
    inside keep working after it (each holds its runtime)."""
    from . import _RUNTIME

    saved = list(_RUNTIME)
    _RUNTIME.clear()
    _FORCED.append(on)
    try:
        yield
    finally:
        _FORCED.pop()
        _RUNTIME[:] = saved
