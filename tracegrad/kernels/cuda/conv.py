"""Device kernels for convolution and pooling: window views, one copy, then a matmul or a row reduction.

The CPU versions (ops/nn_ops.py) never loop over output pixels: every window of the
(padded) input is a strided *view*. For an input xp of shape (N, C, Hp, Wp) with
strides (sN, sC, sH, sW), the windows of a kh x kw kernel with stride (st_h, st_w)
and dilation (dh, dw) are the array

    win[n, c, i, j, oh, ow] = xp[n, c, oh*st_h + i*dh, ow*st_w + j*dw]
    shape (N, C, kh, kw, Ho, Wo), strides (sN, sC, sH*dh, sW*dw, sH*st_h, sW*st_w)

On the device a view is only (shape, strides, offset), and a KernelSpec load takes
any of those, so the same idea carries over unchanged:

    padding     a zero-filled (-inf for max pooling) larger buffer, the input copied
                into its middle: two kernels, skipped when there is no padding
    conv2d      im2col: one copy kernel reads the window view and writes the columns
                (G, Cg*kh*kw, N*Ho*Wo); then out = W @ cols with eager.matmul (tl.dot),
                the bias added in the matmul's epilogue
    input grad  dcols = W^T @ g (a matmul), then col2im as *gathers*: for each kernel
                offset (i, j), the input pixels that offset touched are a strided slice
                of dx, and one elementwise kernel adds dcols[:, :, i, j] into it.
                kh*kw launches; within one launch no pixel is written twice, so no
                atomics are needed
    weight grad g (as (G, Og, N*Ho*Wo)) @ cols^T: one matmul; bias grad a row sum
    max_pool2d  a row reduction over the window dims permuted last: the max, and the
                first position holding it (torch's index into the H*W plane)
    its backward  scatter_add: each window's gradient added (atomically: windows that
                overlap can share a max) at the plane position its index names
    avg_pool2d  a row sum over the window dims, divided by each window's divisor
                (count_include_pad, ceil_mode and divisor_override decide it on the host,
                a small (Ho, Wo) table copied over); its backward is g / divisor added
                back by the same kh*kw strided-slice gathers as the conv input grad
    adaptive_avg_pool2d  separable averaging matrices (built on the host, as the CPU
                does) and two matmuls: A_h @ x @ A_w^T

Each handler takes the op's (args, attrs, dtype, compute) as `eager._run` has them and
returns device arrays; a LoweringError sends the op to the host instead.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ... import dtypes as D
from ...ops import nn_ops
from ..triton.lowering import LoweringError, compute_dtype
from ..triton.spec import KernelSpec, Load, Store
from . import eager, gather
from .array import DeviceArray, contiguous_strides
from .composite import Kernel


# ---- helpers ------------------------------------------------------------------------------------
def _float(dtype: D.DType) -> D.DType:
    if dtype.category != D._FLOAT:
        raise LoweringError(f"{dtype.name} input: the kernel is written for floating-point values")
    return compute_dtype(dtype)


def _view(d: DeviceArray, shape, strides, offset=None) -> DeviceArray:
    return DeviceArray(d.buffer, tuple(shape), tuple(strides), d.offset if offset is None else offset, d.tdtype)


def _batched(d: DeviceArray) -> DeviceArray:
    """A (C, H, W) array as (1, C, H, W): torch pools an unbatched input as a batch of one."""
    return d if d.ndim == 4 else _view(d, (1,) + d.shape, (0,) + d.estrides)


def _padded(x: DeviceArray, ph: int, pw: int, eh: int, ew: int, value: float) -> DeviceArray:
    """x (N, C, H, W) in the middle of a buffer filled with `value`, eh/ew extra rows/cols on the far side."""
    if not (ph or pw or eh or ew):
        return x
    n, c, h, w = x.shape
    out = eager.empty((n, c, h + 2 * ph + eh, w + 2 * pw + ew), x.tdtype)
    eager.write(out, value)
    s = out.estrides
    eager.copy_into(_view(out, x.shape, s, out.offset + ph * s[2] + pw * s[3]), x)
    return out


def _windows(xp: DeviceArray, kernel, ho, wo, stride, dilation) -> DeviceArray:
    """(N, C, Ho, Wo, kh, kw) view of every window of xp (no copy): the window dims last for a row reduction."""
    sn, sc, sh, sw = xp.estrides
    (kh, kw), (st_h, st_w), (dh, dw) = kernel, stride, dilation
    return _view(xp, (xp.shape[0], xp.shape[1], ho, wo, kh, kw), (sn, sc, sh * st_h, sw * st_w, sh * dh, sw * dw))


def _gather_add(dx: DeviceArray, src: DeviceArray, kernel, stride, padding, dilation) -> None:
    """dx (N, C, H, W) += every src[:, :, i, j] (src (N, C, kh, kw, Ho, Wo), any strides) at the input
    pixels that kernel offset (i, j) read: col2im, one elementwise kernel per offset.

    Offset (i, j) of window (oh, ow) read input row oh*sh + i*dh - ph: the windows whose row
    falls inside the input are a contiguous range of oh, and their rows a strided slice of dx."""
    n, c, h, w = dx.shape
    ho, wo = src.shape[4], src.shape[5]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation

    def span(k, s, p, d, o, size):
        start = k * d - p  # input index read by output 0
        lo = max(0, -(-(-start) // s)) if start < 0 else 0
        hi = min(o, (size - 1 - start) // s + 1) if size - 1 - start >= 0 else 0
        return lo, hi, start

    ds = dx.estrides
    ss = src.estrides
    for i in range(kh):
        ylo, yhi, y0 = span(i, sh, ph, dh, ho, h)
        if yhi <= ylo:
            continue
        for j in range(kw):
            xlo, xhi, x0 = span(j, sw, pw, dw, wo, w)
            if xhi <= xlo:
                continue
            shape = (n, c, yhi - ylo, xhi - xlo)
            dst = _view(dx, shape, (ds[0], ds[1], ds[2] * sh, ds[3] * sw),
                        dx.offset + (y0 + ylo * sh) * ds[2] + (x0 + xlo * sw) * ds[3])
            part = _view(src, shape, (ss[0], ss[1], ss[4], ss[5]),
                         src.offset + i * ss[2] + j * ss[3] + ylo * ss[4] + xlo * ss[5])
            eager.pointwise("add", [dst, part], {}, dx.tdtype, compute_dtype(dx.tdtype), out=dst)


def _zeros(shape, dtype) -> DeviceArray:
    out = eager.empty(shape, dtype)
    if out.size:
        eager.write(out, 0.0)
    return out


# ---- conv2d -------------------------------------------------------------------------------------
def _geometry(xshape, wshape, stride, padding, dilation):
    ho = nn_ops._out_size(xshape[2], wshape[2], stride[0], padding[0], dilation[0])
    wo = nn_ops._out_size(xshape[3], wshape[3], stride[1], padding[1], dilation[1])
    return ho, wo


def _columns(x: DeviceArray, wshape, groups, stride, padding, dilation, dtype) -> tuple[DeviceArray, int, int]:
    """im2col: (G, Cg*kh*kw, N*Ho*Wo) row-major columns of x, one copy kernel over the window view."""
    n, c, h, w = x.shape
    _, cg, kh, kw = wshape
    ho, wo = _geometry(x.shape, wshape, stride, padding, dilation)
    xp = _padded(x, padding[0], padding[1], 0, 0, 0.0)
    win = _windows(xp, (kh, kw), ho, wo, stride, dilation)  # (N, C, Ho, Wo, kh, kw)
    cols = eager.empty((groups, cg * kh * kw, n * ho * wo), dtype)
    # cols viewed as (G, Cg, kh, kw, N, Ho, Wo); the window view read in the same dim order
    cshape = (groups, cg, kh, kw, n, ho, wo)
    ws = win.estrides
    src = _view(win, cshape, (cg * ws[1], ws[1], ws[4], ws[5], ws[0], ws[2], ws[3]))
    eager.copy_into(_view(cols, cshape, contiguous_strides(cshape)), src)
    return cols, ho, wo


def _grad_rows(g: DeviceArray, groups: int, dtype) -> DeviceArray:
    """(G, Og, N*Ho*Wo) row-major copy of the output gradient (N, O, Ho, Wo): what both matmuls read."""
    n, o, ho, wo = g.shape
    og = o // groups
    out = eager.empty((groups, og, n * ho * wo), dtype)
    gs = g.estrides
    shape = (groups, og, n, ho, wo)
    eager.copy_into(_view(out, shape, contiguous_strides(shape)),
                    _view(g, shape, (og * gs[1], gs[1], gs[0], gs[2], gs[3])))
    return out


def conv2d(args, attrs, dtype, compute):
    """out = W @ im2col(x) (+ bias in the matmul epilogue), groups as the matmul's batch dim."""
    x, w = args[0]._data, args[1]._data
    b = args[2]._data if args[2] is not None else None
    _float(dtype)
    stride, padding, dilation, groups = attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    og, k = o // groups, cg * kh * kw
    ho, wo = _geometry(x.shape, w.shape, stride, padding, dilation)
    if n * o * ho * wo == 0 or k == 0:
        raise LoweringError("conv2d with an empty input, output or kernel")
    cols, ho, wo = _columns(x, w.shape, groups, stride, padding, dilation, dtype)
    l = ho * wo
    ws = w.estrides
    if w.estrides[1:] != (kh * kw * ws[3], kw * ws[3], ws[3]):
        w = eager.copy_array(w)
        ws = w.estrides
    wm = _view(w, (groups, og, k), (og * ws[0], ws[0], ws[3]))
    cs = cols.estrides
    # cols as (G, K, N, L) -> batch (N, G): b[n, g] = cols[g, :, n*L:(n+1)*L]
    cb = _view(cols, (n, groups, k, l), (l, cs[0], cs[1], 1))
    wb = _view(wm, (1, groups, og, k), (0,) + wm.estrides)
    bias = None
    if b is not None:
        bias = _view(b, (n, groups, og, l), (0, og * b.estrides[0], b.estrides[0], 0))
    out = eager.matmul(wb, cb, dtype, bias=bias)  # (N, G, Og, L): row-major (N, O, Ho, Wo)
    return [_view(out, (n, o, ho, wo), contiguous_strides((n, o, ho, wo)))]


def _input_grad(gm: DeviceArray, w: DeviceArray, shape, stride, padding, dilation, groups, ho, wo, dtype):
    n, c, h, wd = shape
    o, cg, kh, kw = w.shape
    og, k = o // groups, cg * kh * kw
    if w.estrides[1:] != (kh * kw * w.estrides[3], kw * w.estrides[3], w.estrides[3]):
        w = eager.copy_array(w)
    ws = w.estrides
    wt = _view(w, (groups, k, og), (og * ws[0], ws[3], ws[0]))  # W^T per group
    dcols = eager.matmul(wt, gm, dtype)  # (G, K, N*L) = (G, Cg, kh, kw, N, Ho, Wo)
    dx = _zeros(shape, dtype)
    st = contiguous_strides((groups, cg, kh, kw, n, ho, wo))
    # as (N, C, kh, kw, Ho, Wo): channel c = g*Cg + cc has stride st[1] within a group and st[0] = Cg*st[1] across
    src = _view(dcols, (n, c, kh, kw, ho, wo), (st[4], st[1], st[2], st[3], st[5], st[6]))
    _gather_add(dx, src, (kh, kw), stride, padding, dilation)
    return dx


def _weight_grad(gm: DeviceArray, x: DeviceArray, wshape, stride, padding, dilation, groups, dtype):
    o, cg, kh, kw = wshape
    cols, _, _ = _columns(x, wshape, groups, stride, padding, dilation, dtype)  # (G, K, N*L)
    cs = cols.estrides
    colst = _view(cols, (groups, cols.shape[2], cols.shape[1]), (cs[0], cs[2], cs[1]))
    gw = eager.matmul(gm, colst, dtype)  # (G, Og, K) = row-major (O, Cg, kh, kw)
    return _view(gw, tuple(wshape), contiguous_strides(tuple(wshape)))


def _conv_at(attrs):
    return attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]


def _check_backward(g: DeviceArray, k: int, dtype) -> None:
    _float(dtype)
    if g.size == 0 or k == 0:
        raise LoweringError("conv2d backward with an empty gradient or kernel")


def conv2d_input_grad(args, attrs, dtype, compute):
    g, w = args[0]._data, args[1]._data
    stride, padding, dilation, groups = _conv_at(attrs)
    _check_backward(g, math.prod(w.shape[1:]), dtype)
    gm = _grad_rows(g, groups, dtype)
    return [_input_grad(gm, w, tuple(attrs["shape"]), stride, padding, dilation, groups, g.shape[2], g.shape[3],
                        dtype)]


def conv2d_weight_grad(args, attrs, dtype, compute):
    x, g = args[0]._data, args[1]._data
    stride, padding, dilation, groups = _conv_at(attrs)
    wshape = tuple(attrs["wshape"])
    _check_backward(g, math.prod(wshape[1:]), dtype)
    gm = _grad_rows(g, groups, dtype)
    return [_weight_grad(gm, x, wshape, stride, padding, dilation, groups, dtype)]


def conv2d_backward(args, attrs, dtypes, compute):
    """(grad input, grad weight, grad bias); one copy of the gradient serves both matmuls."""
    from ...ops.table import OPS

    g, x, w = (a._data for a in args)
    dtype = dtypes[0] if isinstance(dtypes, tuple) else dtypes
    stride, padding, dilation, groups = _conv_at(attrs)
    needs = attrs.get("needs", (True, True, True))
    _check_backward(g, math.prod(w.shape[1:]), dtype)
    none = eager.empty((0,), dtype)
    gm = _grad_rows(g, groups, dtype) if needs[0] or needs[1] else None
    gx = _input_grad(gm, w, x.shape, stride, padding, dilation, groups, g.shape[2], g.shape[3], dtype) \
        if needs[0] else none
    gw = _weight_grad(gm, x, w.shape, stride, padding, dilation, groups, dtype) if needs[1] else none
    gb = eager.reduce(OPS["sum"], g, {"dims": (0, 2, 3), "keepdim": False}, dtype, None) if needs[2] else none
    return [gx, gw, gb]


# ---- max pooling --------------------------------------------------------------------------------
def max_pool2d(args, attrs, dtype, compute):
    """Each window's max and the first input position (h*W + w) holding it, in one row kernel.

    Matches the CPU version: ties and all -inf windows give the first real position, NaN
    wins (the last NaN's position); padding is -inf and never reported."""
    x0 = args[0]._data
    dts = dtype if isinstance(dtype, tuple) else (x0.tdtype, D.int64)
    ct = _float(dts[0])
    x = _batched(x0)
    n, c, h, w = x.shape
    kernel, stride, padding, dilation = attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"]
    ho, wo, eh, ew = nn_ops._pool_geometry(h, w, kernel, stride, padding, dilation, attrs.get("ceil_mode", False))
    vals = eager.empty((n, c, ho, wo), dts[0])
    idx = eager.empty((n, c, ho, wo), D.int64)
    if vals.size == 0:
        raise LoweringError("max_pool2d of an empty input")
    kh, kw = kernel
    xp = _padded(x, padding[0], padding[1], eh, ew, -math.inf)
    win = _windows(xp, kernel, ho, wo, stride, dilation)
    rows = (np.arange(ho) * stride[0] - padding[0])[:, None] + np.arange(kh)[None, :] * dilation[0]
    cols = (np.arange(wo) * stride[1] - padding[1])[:, None] + np.arange(kw)[None, :] * dilation[1]
    shape = win.shape
    k = Kernel("max_pool2d", shape, 2)
    k.load("x", win)
    k.load("r", eager.from_host(rows.astype(np.int64), D.int64), shape, (0, 0, kh, 0, 1, 0))
    k.load("q", eager.from_host(cols.astype(np.int64), D.int64), shape, (0, 0, 0, kw, 0, 1))
    red = (4, 5)
    big = h * w
    k.step("rw", "mul", "r", w, dtype=D.int64, compute=D.int64)
    k.step("pos", "add", "rw", "q", dtype=D.int64, compute=D.int64)
    k.step("r0", "ge", "r", 0, dtype=D.bool_)
    k.step("r1", "lt", "r", h, dtype=D.bool_)
    k.step("q0", "ge", "q", 0, dtype=D.bool_)
    k.step("q1", "lt", "q", w, dtype=D.bool_)
    k.step("in_r", "logical_and", "r0", "r1", dtype=D.bool_)
    k.step("in_q", "logical_and", "q0", "q1", dtype=D.bool_)
    k.step("inside", "logical_and", "in_r", "in_q", dtype=D.bool_)
    k.step("m", "amax", "x", dims=red, keepdim=True, dtype=ct)
    k.step("at", "eq", "x", "m", dtype=D.bool_)
    k.step("hit", "logical_and", "at", "inside", dtype=D.bool_)
    k.step("cand", "where", "hit", "pos", big, dtype=D.int64)
    k.step("first", "amax", "cand", dims=red, keepdim=True, is_max=False, dtype=D.int64)
    k.step("isn", "isnan", "x", dtype=D.bool_)
    k.step("ncand", "where", "isn", "pos", -1, dtype=D.int64)
    k.step("lastnan", "amax", "ncand", dims=red, keepdim=True, dtype=D.int64)
    k.step("hasnan", "ge", "lastnan", 0, dtype=D.bool_)
    k.step("i", "where", "hasnan", "lastnan", "first", dtype=D.int64)
    k.step("v", "where", "hasnan", math.nan, "m", dtype=ct)
    st = contiguous_strides((n, c, ho, wo)) + (0, 0)
    k.store("v", vals, shape[:4] + (1, 1), st)
    k.store("i", idx, shape[:4] + (1, 1), st)
    k.launch()
    if x0.ndim == 3:
        vals = _view(vals, vals.shape[1:], vals.estrides[1:])
        idx = _view(idx, idx.shape[1:], idx.estrides[1:])
    return [vals, idx]


def max_pool2d_backward(args, attrs, dtype, compute):
    """dx = zeros, then each window's gradient added at the input position its max came from.

    The saved indices are positions in the H*W plane, so this is scatter_add along the
    flattened plane: one kernel over the gradient (N*C*Ho*Wo elements), its store indexed
    by the index and atomic, since overlapping windows can share a max."""
    g0, i0 = args[0]._data, args[1]._data
    shape = tuple(attrs["shape"])
    _float(dtype)
    g, idx = _batched(g0), _batched(i0)
    full = shape if len(shape) == 4 else (1,) + shape
    n, c, h, w = full
    out = _zeros(full, dtype)
    if out.size == 0 or g.size == 0:
        raise LoweringError("max_pool2d_backward of an empty tensor")
    acc = gather._accumulator(out)
    kshape = g.shape
    st = (acc.estrides[0], acc.estrides[1], 0, 0)
    spec = KernelSpec("max_pool2d_backward", kshape,
                      (Load("i", idx.tdtype, kshape, idx.estrides, idx.offset),
                       Load("g", g.tdtype, kshape, g.estrides, g.offset)), (),
                      (Store("dx", "g", acc.tdtype, kshape, st, acc.offset, (("i", 1),), True),))
    eager._launch(spec, {"i": idx, "g": g, "dx": acc})
    gather._finish(out, acc)
    if len(shape) == 3:
        out = _view(out, shape, out.estrides[1:])
    return [out]


# ---- average pooling ------------------------------------------------------------------------------
def _avg_attrs(attrs):
    return (attrs["kernel"], attrs["stride"], attrs["padding"], attrs.get("ceil_mode", False),
            attrs.get("count_include_pad", True), attrs.get("divisor_override"))


def avg_pool2d(args, attrs, dtype, compute):
    """Each window's sum over the zero-padded input, divided by its divisor (a host-built (Ho, Wo) table)."""
    x0 = args[0]._data
    ct = _float(dtype)
    x = _batched(x0)
    kernel, stride, padding, ceil_mode, cip, override = _avg_attrs(attrs)
    ho, wo, eh, ew, div = nn_ops._avg_geometry(x.shape, kernel, stride, padding, ceil_mode, cip, override)
    n, c = x.shape[:2]
    out = eager.empty((n, c, ho, wo), dtype)
    if out.size == 0:
        raise LoweringError("avg_pool2d of an empty input")
    xp = _padded(x, padding[0], padding[1], eh, ew, 0.0)
    win = _windows(xp, kernel, ho, wo, stride, (1, 1))
    shape = win.shape
    k = Kernel("avg_pool2d", shape, 2)
    k.load("x", win)
    k.load("d", eager.from_host(div.astype(D.compute_np(ct)), ct), shape[:4] + (1, 1), (0, 0, wo, 1, 0, 0))
    k.step("s", "sum", "x", dims=(4, 5), keepdim=True, dtype=ct)
    k.step("y", "div", "s", "d", dtype=ct, compute=ct)
    k.store("y", out, shape[:4] + (1, 1), contiguous_strides((n, c, ho, wo)) + (0, 0))
    k.launch()
    if x0.ndim == 3:
        out = _view(out, out.shape[1:], out.estrides[1:])
    return [out]


def avg_pool2d_backward(args, attrs, dtype, compute):
    """g / divisor, added back over each window's input pixels by kh*kw strided-slice kernels."""
    g0 = args[0]._data
    ct = _float(dtype)
    g = _batched(g0)
    shape = tuple(attrs["shape"])
    full = shape if len(shape) == 4 else (1,) + shape
    kernel, stride, padding, ceil_mode, cip, override = _avg_attrs(attrs)
    ho, wo, eh, ew, div = nn_ops._avg_geometry(full, kernel, stride, padding, ceil_mode, cip, override)
    if g.size == 0:
        raise LoweringError("avg_pool2d_backward of an empty gradient")
    d = eager.from_host(div.astype(D.compute_np(ct)), ct)
    gd = eager.pointwise("div", [g, d], {}, dtype, ct)
    gs = gd.estrides
    n, c = full[:2]
    src = _view(gd, (n, c) + tuple(kernel) + (ho, wo), (gs[0], gs[1], 0, 0, gs[2], gs[3]))
    dx = _zeros(full, dtype)
    _gather_add(dx, src, kernel, stride, padding, (1, 1))
    if len(shape) == 3:
        dx = _view(dx, shape, dx.estrides[1:])
    return [dx]


def adaptive_avg_pool2d(args, attrs, dtype, compute):
    """A_h @ x @ A_w^T with the CPU's averaging matrices (separable: rows, then columns)."""
    x = args[0]._data
    _float(dtype)
    oh, ow = attrs["out_size"]
    h, w = x.shape[-2:]
    if x.size == 0 or oh * ow == 0:
        raise LoweringError("adaptive_avg_pool2d of an empty input or output")
    ah = eager.copy_array(eager.from_host(nn_ops.adaptive_matrix(h, oh, np.float32), D.float32), dtype)
    awt = eager.copy_array(eager.from_host(np.ascontiguousarray(nn_ops.adaptive_matrix(w, ow, np.float32).T),
                                           D.float32), dtype)
    rows = eager.matmul(ah, x, dtype)
    return [eager.matmul(rows, awt, dtype)]


HANDLERS: dict[str, Callable] = {
    "conv2d": conv2d, "conv2d_input_grad": conv2d_input_grad, "conv2d_weight_grad": conv2d_weight_grad,
    "conv2d_backward": conv2d_backward, "max_pool2d": max_pool2d, "max_pool2d_backward": max_pool2d_backward,
    "avg_pool2d": avg_pool2d, "avg_pool2d_backward": avg_pool2d_backward,
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
}
