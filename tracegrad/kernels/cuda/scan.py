"""Device kernels for the scans (cumsum, cumprod) and argsort, along any dim.

The dim is permuted last by strides (no copy), so every scan is the row kernel of
kernels/triton/reduction.py with one scan step: tl.cumsum / tl.cumprod over a
row that fits one block, or block by block with a per-row carry when it does not.
The result is row-major, as torch's (and the CPU's) is. Integer and bool inputs
accumulate in int64 (the op's dtype rule); float16/bfloat16 in float32.

argsort is the same row kernel with one sort step (a tl.sort of value-and-column keys,
see reduction.py): rows of up to one block, values of at most 32 bits (int64 ones when
their min and max, read back first, fit int32); longer rows and other 64-bit values go
to the host. Its result keeps the input's memory order, as torch's.
"""
from __future__ import annotations

from typing import Callable

from ... import dtypes as D
from ..triton.spec import KernelSpec, Load, Step, Store
from . import eager
from .array import DeviceArray


def _last(seq, dim: int) -> tuple:
    return tuple(v for i, v in enumerate(seq) if i != dim) + (seq[dim],)


def _scan(name: str):
    def run(args, attrs, dtype, compute):
        x = args[0]._data
        out = eager.empty(x.shape, dtype)
        if x.size == 0:
            return [out]
        if x.ndim == 0:  # a 0-d scan is a 1-element row
            x = DeviceArray(x.buffer, (1,), (1,), x.offset, x.tdtype)
            o = DeviceArray(out.buffer, (1,), (1,), out.offset, out.tdtype)
            dim = 0
        else:
            o, dim = out, attrs["dim"]
        shape = _last(x.shape, dim)
        step = Step("y", name, ("x",), {"dim": len(shape) - 1, "dtype": dtype}, dtype)
        spec = KernelSpec(name, shape, (Load("x", x.tdtype, shape, _last(x.estrides, dim), x.offset),), (step,),
                          (Store("out", "y", dtype, shape, _last(o.estrides, dim), o.offset),), 1)
        eager._launch(spec, {"x": x, "out": o})
        return [out]
    return run


def argsort(args, attrs, dtype, compute):
    from .composite import _like

    x = args[0]._data
    out = _like(x, D.int64)
    if x.ndim == 0 or x.size == 0:  # the order of one element (or of none)
        if out.size:
            eager.write(out, 0)
        return [out]
    dim = attrs["dim"]
    shape = _last(x.shape, dim)
    sattrs = {"dim": len(shape) - 1, "descending": attrs["descending"]}
    if x.tdtype is D.int64:  # (the default integer dtype) 32-bit keys do when every value fits: one sync to know
        from .gather import index_range

        lo, hi = index_range(x)
        sattrs["fits32"] = -2 ** 31 <= lo and hi < 2 ** 31
    step = Step("i", "argsort", ("x",), sattrs, D.int64)
    spec = KernelSpec("argsort", shape, (Load("x", x.tdtype, shape, _last(x.estrides, dim), x.offset),), (step,),
                      (Store("out", "i", D.int64, shape, _last(out.estrides, dim), out.offset),), 1)
    eager._launch(spec, {"x": x, "out": out})
    return [out]


HANDLERS: dict[str, Callable] = {"cumsum": _scan("cumsum"), "cumprod": _scan("cumprod"), "argsort": argsort}
