"""The CUDA runtime: device memory through a caching allocator, host<->device copies,
and Triton launches on raw device pointers.

    driver.py      the driver API via cuda-bindings (imported lazily)
    allocator.py   the caching allocator (size classes, reuse without synchronisation)
    array.py       DeviceArray: a strided view of device memory, a CUDA tensor's `_data`
    eager.py       the device dispatcher: ops on CUDA tensors as generated Triton kernels
    simulate.py    a simulated device: host memory and Triton's interpreter, for tests

`runtime()` builds the one Runtime of the process on first use (device 0): on a
machine without a GPU it raises the RuntimeError `device='cuda'` raises (unless
the simulated device is switched on, see simulate.py), and `import tracegrad`
never touches any of this.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ... import dtypes as D
from .allocator import Block, CachingAllocator
from .driver import CudaError, Driver, OutOfMemoryError, device_count, is_available

__all__ = ["Runtime", "DeviceBuffer", "KernelArg", "runtime", "available", "is_available", "device_count",
           "CudaError", "OutOfMemoryError"]


class DeviceBuffer:
    """One storage in device memory: a Triton kernel argument (data_ptr() and dtype)."""

    def __init__(self, rt: "Runtime", block: Block, dtype: D.DType, numel: int):
        self.runtime, self.block, self.dtype, self.numel = rt, block, dtype, numel

    def data_ptr(self) -> int:
        return self.block.ptr

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def free(self) -> None:
        """Give the memory back to the allocator's cache (no driver call, no sync)."""
        if self.block is not None:
            self.runtime.allocator.free(self.block)
            self.block = None

    def __del__(self):
        # the last tensor viewing this storage is gone: its memory goes back to the cache
        try:
            self.free()
        except Exception:  # interpreter shutdown: the allocator may already be gone
            pass

    def __repr__(self) -> str:
        return f"DeviceBuffer({self.numel} x {self.dtype.name} at {self.block.ptr:#x})"


class Runtime:
    """A driver, its allocator, and the copies and launches built on them.

    interpret=True runs kernels under Triton's interpreter on the driver's host
    memory (the simulated device); the driver must then offer host_memory()."""

    def __init__(self, driver, interpret: bool = False):
        self.driver = driver
        self.allocator = CachingAllocator(driver)
        self.interpret = interpret

    def launch(self, source, args: Mapping[str, "KernelArg"]) -> None:
        """Launch a generated kernel with one device argument per parameter buffer."""
        from ..triton.launch import launch

        if not self.interpret:
            launch(source, args)
            return
        from ..triton.interpret import NumpyBuffer, gpu_rounding

        host = {}
        for name, a in args.items():
            mem = self.driver.host_memory(a.data_ptr(), a.nbytes) if a.nbytes else np.zeros(a.dtype.itemsize, np.uint8)
            host[name] = NumpyBuffer(mem.view(a.dtype.np), a.dtype)
        with np.errstate(all="ignore"), gpu_rounding():  # a GPU neither warns on inf/nan nor truncates
            launch(source, host, interpret=True)

    def empty(self, numel: int, dtype: D.DType) -> DeviceBuffer:
        return DeviceBuffer(self, self.allocator.malloc(numel * dtype.itemsize), dtype, numel)

    def to_device(self, storage: np.ndarray, dtype: D.DType | None = None) -> DeviceBuffer:
        """Copy a 1-D host storage to a new device buffer (bfloat16: its uint16 bits)."""
        dtype = dtype or D.from_numpy_dtype(storage.dtype)
        buf = self.empty(storage.size, dtype)
        self.driver.copy_to_device(buf.data_ptr(), storage)
        return buf

    def to_host(self, buf: DeviceBuffer) -> np.ndarray:
        out = np.empty(buf.numel, dtype=buf.dtype.np)
        self.driver.copy_to_host(out, buf.data_ptr())
        return out

    def run(self, source, storages: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Launch a generated kernel on copies of host storages; return the stored ones, copied back."""
        from ..triton.launch import launch

        bufs = {p.buffer: self.to_device(np.ascontiguousarray(storages[p.buffer]), p.dtype) for p in source.params}
        try:
            launch(source, bufs)
            return {p.buffer: self.to_host(bufs[p.buffer]) for p in source.params if p.role == "store"}
        finally:
            for b in bufs.values():
                b.free()


class KernelArg:
    """A kernel's pointer argument: an address and the element type the kernel reads there.

    A view may read its storage as another dtype (`view(dtype)`), so the argument
    carries the dtype of the use, not of the allocation."""

    __slots__ = ("ptr", "dtype", "nbytes")

    def __init__(self, ptr: int, dtype: D.DType, nbytes: int):
        self.ptr, self.dtype, self.nbytes = ptr, dtype, nbytes

    def data_ptr(self) -> int:
        return self.ptr


_RUNTIME: list[Runtime] = []


def runtime() -> Runtime:
    """The process's CUDA runtime on device 0, created on first use."""
    if not _RUNTIME:
        from . import simulate

        if simulate.enabled():
            _RUNTIME.append(Runtime(simulate.SimulatedDriver(), interpret=True))
            return _RUNTIME[0]
        if not is_available():
            from ...device import NO_CUDA

            raise RuntimeError(NO_CUDA)
        _RUNTIME.append(Runtime(Driver(0)))
    return _RUNTIME[0]


def available() -> bool:
    """Whether CUDA tensors can be made: a real device, or the simulated one switched on."""
    from . import simulate

    return bool(_RUNTIME) or simulate.enabled() or is_available()
