"""Device kernels for movement ops that copy: flip, repeat, constant_pad_nd.

None of them needs an indexed load: each is a copy kernel whose source is a
strided view of the input, the same load -> store kernel `clone` launches.

    flip(x, dims)          the source read with the flipped dims' strides negated and
                           its offset moved to their last element
    repeat(x, reps)        the output viewed as (r0, n0, r1, n1, ...); the source read
                           with stride 0 on each r axis, so every tile copies x
    constant_pad_nd(x, p)  a fill kernel writes the value, then a copy writes x into the
                           interior slice of the output (a negative pad narrows the
                           source instead of widening the output)

Each handler takes the op's (args, attrs, dtype, compute) as `eager._run` has
them and returns its outputs as device arrays.
"""
from __future__ import annotations

from typing import Callable

from ... import dtypes as D
from . import eager
from .array import DeviceArray, contiguous_strides


def _like(x: DeviceArray, dtype: D.DType) -> DeviceArray:
    """New memory shaped like x in x's memory order (what torch's flip returns)."""
    from ...ops.shape_util import pointwise_strides

    return eager.empty(x.shape, dtype, pointwise_strides(x.shape, [(x.shape, x.estrides)]))


def flip(args, attrs, dtype, compute):
    """out[i] = x[n - 1 - i] along each flipped dim: one copy from x read backwards."""
    x = args[0]._data
    out = _like(x, dtype)
    if out.size == 0:
        return [out]
    strides, offset = list(x.estrides), x.offset
    for d in attrs.get("dims", ()):
        d %= x.ndim
        # start at the dim's last element and walk back: index i reads element n - 1 - i
        offset += (x.shape[d] - 1) * strides[d]
        strides[d] = -strides[d]
    eager.copy_into(out, DeviceArray(x.buffer, x.shape, tuple(strides), offset, x.tdtype))
    return [out]


def repeat(args, attrs, dtype, compute):
    """np.tile: x (with leading size-1 dims added) copied into each of the output's r0 x r1 x ... tiles."""
    x = args[0]._data
    reps = tuple(attrs["reps"])
    lead = len(reps) - x.ndim
    shape = (1,) * lead + x.shape
    xstrides = (0,) * lead + x.estrides
    final = tuple(r * n for r, n in zip(reps, shape))
    out = eager.empty(final, dtype)
    if out.size == 0:
        return [out]
    # the output as (r0, n0, r1, n1, ...): tile index then the index inside the tile
    ostrides = contiguous_strides(final)
    split_shape, src_strides, dst_strides = [], [], []
    for r, n, xs, os_ in zip(reps, shape, xstrides, ostrides):
        split_shape += [r, n]
        src_strides += [0, xs]
        dst_strides += [n * os_, os_]
    src = DeviceArray(x.buffer, tuple(split_shape), tuple(src_strides), x.offset, x.tdtype)
    dst = DeviceArray(out.buffer, tuple(split_shape), tuple(dst_strides), out.offset, out.tdtype)
    eager.copy_into(dst, src)
    return [out]


def fill(out: DeviceArray, value) -> None:
    """out[...] = value (a Python number) by one kernel, with no host-to-device copy.

    A KernelSpec step needs at least one block-shaped operand to render, so the kernel
    reads one element of `out` itself (whatever is there) and picks `value` whichever
    way the comparison goes: the element is read once and its value never used."""
    from .composite import Kernel

    if out.size == 0:
        return
    k = Kernel("fill", out.shape)
    k.load("o", out, (), ())
    k.step("c", "eq", "o", "o", dtype=D.bool_)
    k.step("v", "where", "c", value, value, dtype=out.tdtype)
    k.store("v", out)
    k.launch()


def _pad_value(value, dtype: D.DType):
    """The pad value as the Python number a kernel step takes, converted to the tensor's kind."""
    if dtype is D.bool_:
        return bool(value)
    if dtype.category == D._INT:
        return int(value)
    return float(value)


def constant_pad_nd(args, attrs, dtype, compute):
    """F.pad(x, pad, value=v): pad = (left, right) pairs from the last dim backwards.

    The output is filled with v (skipped when nothing is padded, only cropped), then x,
    narrowed by any negative pads, is copied into the slice of the output it lands in."""
    x = args[0]._data
    pad = tuple(attrs.get("pad", ()))
    nd = x.ndim
    shape, dst_lo, src_shape, src_off = list(x.shape), [0] * nd, list(x.shape), x.offset
    for k in range(len(pad) // 2):
        d = nd - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        n = x.shape[d]
        shape[d] = n + lo + hi
        dst_lo[d] = max(lo, 0)
        src_shape[d] = max(n + min(lo, 0) + min(hi, 0), 0)
        src_off += max(-lo, 0) * x.estrides[d]
    out = eager.empty(tuple(shape), dtype)
    if out.size == 0:
        return [out]
    if any(p > 0 for p in pad):
        value = attrs.get("value")
        fill(out, _pad_value(0 if value is None else value, dtype))
    if all(src_shape):
        dst = DeviceArray(out.buffer, tuple(src_shape), out.estrides,
                          out.offset + sum(lo * s for lo, s in zip(dst_lo, out.estrides)), out.tdtype)
        eager.copy_into(dst, DeviceArray(x.buffer, tuple(src_shape), x.estrides, src_off, x.tdtype))
    return [out]


HANDLERS: dict[str, Callable] = {"flip": flip, "repeat": repeat, "constant_pad_nd": constant_pad_nd}
