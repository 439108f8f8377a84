"""Device kernels for the scans: cumsum and cumprod along any dim.

The dim is permuted last by strides (no copy), so every scan is the row kernel of
kernels/triton/reduction.py with one scan step: tl.cumsum / tl.cumprod over a
row that fits one block, or block by block with a per-row carry when it does not.
The result is row-major, as torch's (and the CPU's) is. Integer and bool inputs
accumulate in int64 (the op's dtype rule); float16/bfloat16 in float32.
"""
from __future__ import annotations

from typing import Callable

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


HANDLERS: dict[str, Callable] = {"cumsum": _scan("cumsum"), "cumprod": _scan("cumprod")}
