"""The CUDA runtime layer without a GPU: the caching allocator's bookkeeping on a fake
driver, the driver glue on fake bindings, and honest answers on this machine."""
from __future__ import annotations

import ctypes
import enum
import subprocess
import sys

import numpy as np
import pytest

import tracegrad
from tracegrad import dtypes as D
from tracegrad.kernels import cuda as kc
from tracegrad.kernels.cuda import allocator as A
from tracegrad.kernels.cuda import driver as drv


class FakeMemoryDriver:
    """mem_alloc/mem_free over a capacity; counts every call a real driver would make."""

    def __init__(self, capacity: int = 64 << 20):
        self.capacity, self.used, self.next = capacity, 0, 0x10000
        self.live: dict[int, int] = {}
        self.allocs = self.frees = 0

    def mem_alloc(self, n: int) -> int:
        if self.used + n > self.capacity:
            raise drv.OutOfMemoryError("CUDA error: cuMemAlloc failed with CUDA_ERROR_OUT_OF_MEMORY")
        ptr, self.next = self.next, self.next + n
        self.live[ptr] = n
        self.used += n
        self.allocs += 1
        return ptr

    def mem_free(self, ptr: int) -> None:
        self.used -= self.live.pop(ptr)
        self.frees += 1


@pytest.mark.parametrize("n, size", [(1, 512), (512, 512), (513, 1024), ((1 << 20) - 1, 1 << 20),
                                     (1 << 20, 2 << 20), ((2 << 20) + 1, 4 << 20), (0, 0)])
def test_sizes_round_into_classes(n, size):
    assert A.round_size(n) == size


def test_freed_blocks_are_reused_without_driver_calls():
    d = FakeMemoryDriver()
    alloc = A.CachingAllocator(d)
    a = alloc.malloc(1000)
    alloc.free(a)
    assert d.frees == 0  # no cuMemFree (which would synchronise the device)
    b = alloc.malloc(700)  # same 1024-byte class
    assert b.ptr == a.ptr and d.allocs == 1 and alloc.reuses == 1
    c = alloc.malloc(5000)  # another class: a new allocation
    assert c.ptr != a.ptr and d.allocs == 2


def test_bookkeeping():
    d = FakeMemoryDriver()
    alloc = A.CachingAllocator(d)
    blocks = [alloc.malloc(n) for n in (100, 3000, 3 << 20)]
    assert alloc.allocated == 512 + 3072 + (4 << 20) == alloc.reserved == d.used
    alloc.free(blocks[1])
    assert alloc.allocated == 512 + (4 << 20) and alloc.cached == 3072 and alloc.reserved == d.used
    assert alloc.peak_allocated == 512 + 3072 + (4 << 20)
    alloc.empty_cache()
    assert alloc.cached == 0 and d.used == alloc.allocated and d.frees == 1
    assert alloc.stats()["live_blocks"] == 2


def test_double_free_is_an_error():
    alloc = A.CachingAllocator(FakeMemoryDriver())
    b = alloc.malloc(64)
    alloc.free(b)
    with pytest.raises(RuntimeError, match="freed twice"):
        alloc.free(b)


def test_out_of_memory_releases_the_cache_then_retries():
    d = FakeMemoryDriver(capacity=8 << 20)
    alloc = A.CachingAllocator(d)
    alloc.free(alloc.malloc(6 << 20))  # 6 MiB cached
    b = alloc.malloc(4 << 20)  # does not fit beside the cache: the cache goes back, then it fits
    assert b.size == 4 << 20 and alloc.cached == 0 and d.frees == 1
    with pytest.raises(drv.OutOfMemoryError, match="CUDA out of memory. Tried to allocate 6.00 MiB"):
        alloc.malloc(6 << 20)
    assert isinstance(drv.OutOfMemoryError("x"), RuntimeError)


def test_zero_bytes_need_no_memory():
    d = FakeMemoryDriver()
    alloc = A.CachingAllocator(d)
    b = alloc.malloc(0)
    alloc.free(b)
    assert d.allocs == 0 and alloc.allocated == 0


# ---- the driver glue, on fake bindings -------------------------------------------------------------
class FakeBindings:
    """The slice of cuda.bindings.driver the runtime calls; 'device memory' is host memory."""

    class CUresult(enum.Enum):
        CUDA_SUCCESS = 0
        CUDA_ERROR_INVALID_VALUE = 1
        CUDA_ERROR_OUT_OF_MEMORY = 2
        CUDA_ERROR_NO_DEVICE = 100

    def __init__(self, devices=1, capacity=1 << 20, init_error=None):
        self.devices, self.capacity, self.init_error = devices, capacity, init_error
        self.mem: dict[int, np.ndarray] = {}
        self.calls: list[str] = []

    def _ok(self, *values):
        return (self.CUresult.CUDA_SUCCESS, *values)

    def cuInit(self, flags):
        self.calls.append("cuInit")
        return (self.init_error,) if self.init_error else self._ok()

    def cuDeviceGetCount(self):
        return self._ok(self.devices)

    def cuDeviceGet(self, i):
        return self._ok(i) if i < self.devices else (self.CUresult.CUDA_ERROR_INVALID_VALUE, None)

    def cuDevicePrimaryCtxRetain(self, dev):
        self.calls.append("primary")
        return self._ok(("ctx", dev))

    def cuCtxSetCurrent(self, ctx):
        return self._ok()

    def cuMemAlloc(self, n):
        if sum(a.nbytes for a in self.mem.values()) + n > self.capacity:
            return (self.CUresult.CUDA_ERROR_OUT_OF_MEMORY, None)
        a = np.zeros(n, np.uint8)
        self.mem[a.ctypes.data] = a
        return self._ok(a.ctypes.data)

    def cuMemFree(self, p):
        del self.mem[int(p)]
        return self._ok()

    def cuMemcpyHtoD(self, dst, src, n):
        ctypes.memmove(dst, src, n)
        return self._ok()

    def cuMemcpyDtoH(self, dst, src, n):
        ctypes.memmove(dst, src, n)
        return self._ok()

    def cuCtxSynchronize(self):
        return self._ok()

    def cuGetErrorString(self, err):
        return self._ok(b"out of memory" if err == self.CUresult.CUDA_ERROR_OUT_OF_MEMORY else b"invalid")


def test_runtime_round_trips_through_device_memory(rng):
    cu = FakeBindings()
    rt = kc.Runtime(drv.Driver(0, cu=cu))
    assert cu.calls[:2] == ["cuInit", "primary"]  # the primary context, shared with Triton
    for dt in (D.float32, D.int64, D.bfloat16):
        host = rng.integers(0, 1000, 37).astype(dt.np)
        buf = rt.to_device(host, dt)
        assert buf.data_ptr() != 0 and buf.nbytes == 37 * dt.itemsize
        assert np.array_equal(rt.to_host(buf), host)
        buf.free()
    assert rt.allocator.allocated == 0 and rt.allocator.cached > 0


def test_driver_errors_name_the_call():
    cu = FakeBindings(capacity=1024)
    d = drv.Driver(0, cu=cu)
    with pytest.raises(drv.OutOfMemoryError, match="cuMemAlloc failed with CUDA_ERROR_OUT_OF_MEMORY: out of memory"):
        d.mem_alloc(4096)
    with pytest.raises(drv.CudaError, match="cuDeviceGet failed with CUDA_ERROR_INVALID_VALUE"):
        drv.Driver(3, cu=cu)


@pytest.mark.parametrize("cu, expected", [(None, (False, 0)), (FakeBindings(devices=2), (True, 2)),
                                          (FakeBindings(devices=0), (False, 0)),
                                          (FakeBindings(init_error=FakeBindings.CUresult.CUDA_ERROR_NO_DEVICE),
                                           (False, 0))])
def test_availability_probe(monkeypatch, cu, expected):
    monkeypatch.setattr(drv, "bindings", lambda: cu)
    monkeypatch.setattr(drv, "_PROBE", [])
    assert (drv.is_available(), drv.device_count()) == expected


# ---- this machine: no GPU, and tracegrad says so ----------------------------------------------------
def test_no_gpu_here_is_reported_honestly():
    assert tracegrad.cuda.is_available() is False
    assert tracegrad.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="NVIDIA driver"):
        tracegrad.zeros(3, device="cuda")
    with pytest.raises(RuntimeError, match="NVIDIA driver"):
        kc.runtime()


def test_import_tracegrad_loads_neither_triton_nor_the_cuda_bindings():
    code = ("import sys, tracegrad; tracegrad.cuda.is_available(); "
            "import tracegrad.kernels.triton, tracegrad.kernels.cuda; "
            "print(sorted(m for m in ('triton', 'cuda', 'cuda.bindings', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out  # rendering specs needs neither; they load when a kernel runs
