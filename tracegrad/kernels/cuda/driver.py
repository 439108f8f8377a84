"""The CUDA driver API through NVIDIA's Python bindings (`cuda-bindings`), imported only when used.

What tracegrad needs from the driver is small:

    cuInit, cuDeviceGet          find the device
    cuDevicePrimaryCtxRetain     its primary context: the one Triton's launcher uses,
                                 so kernels and our memory live in the same context
    cuMemAlloc / cuMemFree       device memory (the caching allocator sits on top)
    cuMemcpyHtoD / cuMemcpyDtoH  copies; these are synchronous and run on the legacy
                                 default stream, the one stream Triton launches on when
                                 torch is absent, so copies and kernels stay in order

Every binding returns (CUresult, values...); `check` turns a failure into a
`CudaError` (or `OutOfMemoryError`) naming the call. Nothing here runs at import:
`import tracegrad` works on machines without a GPU, the driver or the bindings.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


class OutOfMemoryError(CudaError):
    """Device memory ran out (torch raises torch.OutOfMemoryError, also a RuntimeError)."""


def bindings():
    """The driver module of cuda-bindings, or None when it is not installed."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # cuda-python before 12.6 called it this
        except ImportError:
            return None
    return driver


_PROBE: list[tuple[bool, int]] = []


def _probe() -> tuple[bool, int]:
    """(usable, device count), asked once: bindings present, driver initialises, a device exists."""
    if not _PROBE:
        cu = bindings()
        result = (False, 0)
        if cu is not None:
            try:
                (err,) = cu.cuInit(0)
                if _ok(cu, err):
                    err, n = cu.cuDeviceGetCount()
                    if _ok(cu, err) and int(n) > 0:
                        result = (True, int(n))
            except Exception:  # a broken driver install is "no CUDA", not a crash at import
                result = (False, 0)
        _PROBE.append(result)
    return _PROBE[0]


def is_available() -> bool:
    return _probe()[0]


def device_count() -> int:
    return _probe()[1]


def _ok(cu, err) -> bool:
    return err == cu.CUresult.CUDA_SUCCESS


def check(cu, result, call: str) -> Any:
    """Unpack a binding's (CUresult, values...) result, raising on failure."""
    err, *values = result
    if not _ok(cu, err):
        name = getattr(err, "name", str(err))
        try:
            _, msg = cu.cuGetErrorString(err)
            msg = msg.decode() if isinstance(msg, bytes) else str(msg)
        except Exception:
            msg = ""
        cls = OutOfMemoryError if name == "CUDA_ERROR_OUT_OF_MEMORY" else CudaError
        raise cls(f"CUDA error: {call} failed with {name}" + (f": {msg}" if msg else ""))
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class Driver:
    """One device through the driver API: its primary context, memory and copies."""

    def __init__(self, index: int = 0, cu=None):
        self.cu = cu if cu is not None else bindings()
        if self.cu is None:
            from ...device import NO_CUDA

            raise RuntimeError(NO_CUDA)
        self.index = index
        self._call("cuInit", 0)
        self.device = self._call("cuDeviceGet", index)
        self.context = self._call("cuDevicePrimaryCtxRetain", self.device)
        self._call("cuCtxSetCurrent", self.context)

    def _call(self, name: str, *args):
        return check(self.cu, getattr(self.cu, name)(*args), name)

    # ---- memory ---------------------------------------------------------------------
    def mem_alloc(self, nbytes: int) -> int:
        return int(self._call("cuMemAlloc", nbytes))

    def mem_free(self, ptr: int) -> None:
        self._call("cuMemFree", ptr)

    def copy_to_device(self, dst: int, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        if host.nbytes:
            self._call("cuMemcpyHtoD", dst, host.ctypes.data, host.nbytes)

    def copy_to_host(self, host: np.ndarray, src: int) -> None:
        if not host.flags.c_contiguous:
            raise ValueError("copies land in contiguous host arrays")
        if host.nbytes:
            self._call("cuMemcpyDtoH", host.ctypes.data, src, host.nbytes)

    def synchronize(self) -> None:
        self._call("cuCtxSynchronize")

    # ---- what the device is -----------------------------------------------------------
    def name(self) -> str:
        raw = self._call("cuDeviceGetName", 256, self.device)
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        return raw.split("\x00", 1)[0]

    def total_memory(self) -> int:
        return int(self._call("cuDeviceTotalMem", self.device))
