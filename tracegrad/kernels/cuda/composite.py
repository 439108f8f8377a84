"""Device kernels for the op table's composite ops: softmax, losses, normalisation, concatenation.

These ops have no single Triton lowering in the op table: each is a small program
of primitives (max, sub, exp, sum, div...). On the device each becomes one
KernelSpec written out of those primitives, the same decomposition the tracer
uses, so it is rendered and compiled by the same code as every other kernel:

    softmax(x)           m = amax(x); e = exp(x - m); y = e / sum(e)     one row kernel
    log_softmax(x)       s = x - amax(x); y = s - log(sum(exp(s)))       one row kernel
    their backwards      y * (g - sum(g * y)), g - exp(y) * sum(g)       one row kernel
    cross_entropy        log_softmax and the target's logit per row, then the batch reduction
    nll_loss             the target's log-probability per row, then the batch reduction
    mse_loss             (x - t)^2 summed or averaged over everything    one kernel
    layer_norm           mean, rstd and the normalised rows              one row kernel
    logsumexp, var/std   m + log(sum(exp(x - m))), sum((x - mean)^2) / dof   one row kernel
    max/min over a dim,  the extreme, then the smallest index holding it     one row kernel
      argmax/argmin
    cat / stack          one copy kernel per input, into its slice of the output
    nansum, norm,        sum(where(isnan(x), 0, x)); |x| reduced by max/min, a count, a sum
      any / all            or sum(|x|^p)^(1/p); the max/min of (x != 0)         one row kernel
    smooth_l1 / huber,   the elementwise loss and its sum or mean                one kernel
      bce, bce_logits      (bce also flags any p outside [0, 1] for torch's error)
    batch_norm           training: the channel dim permuted first, its statistics and the
                           normalised values from one row kernel; evaluation: a (C,) kernel
                           for (mean, invstd) and a pointwise one; the running buffers'
                           update is one (C,) kernel (batch_norm_update_running)

An empty reduction with an identity (nansum and norm give 0, any False, all True)
is a fill kernel (movement.fill), not a host round trip.

The dim an op works along is permuted last by strides (no copy), so a softmax
over dim 0 is the same row kernel as one over the last dim.

Picking one class per row (a gather) has no load of its own in the codegen: it
is a row reduction, sum(where(classes == target, x, 0)), over a small int64
buffer of class numbers 0..C-1 broadcast against the rows. The row is read
whole anyway by the softmax around it. Targets are bounds-checked first, by one
small kernel whose answer is read back (check_targets): torch's CPU error, where
its CUDA kernels raise a device-side assert.

General gathers and scans have their own modules: gather.py and scan.py.

Each handler takes the op's (args, attrs, dtype, compute) as `eager._run` has
them and returns the outputs as device arrays; a LoweringError sends the op to
the host instead.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ... import dtypes as D
from ..triton.lowering import LoweringError, compute_dtype
from ..triton.spec import KernelSpec, Load, Step, Store
from . import eager
from .array import DeviceArray, contiguous_strides


class Kernel:
    """A KernelSpec built up step by step, with the device arrays its loads and stores name.

    Loads and stores take a device array and, optionally, the shape and strides to
    read it with (a permuted or broadcast view of it); steps name op-table primitives."""

    def __init__(self, name: str, shape: Sequence[int], reduce_ndim: int = 0):
        self.name, self.shape, self.reduce_ndim = name, tuple(shape), reduce_ndim
        self.loads: list[Load] = []
        self.body: list[Step] = []
        self.stores: list[Store] = []
        self.arrays: dict[str, DeviceArray] = {}

    def load(self, name: str, d: DeviceArray, shape=None, strides=None) -> str:
        shape = d.shape if shape is None else tuple(shape)
        strides = d.estrides if strides is None else tuple(strides)
        self.loads.append(Load(name, d.tdtype, shape, strides, d.offset))
        self.arrays[name] = d
        return name

    def step(self, out: str, op: str, *args, dtype: D.DType | None = None, compute: D.DType | None = None,
             **attrs) -> str:
        self.body.append(Step(out, op, args, attrs, dtype, compute))
        return out

    def cast(self, out: str, value: str, dtype: D.DType) -> str:
        """out = value converted to dtype (a bool mask to 0.0/1.0)."""
        self.body.append(Step(out, "to_copy", (value,), {"dtype": dtype}, dtype))
        return out

    def store(self, value: str, out: DeviceArray, shape=None, strides=None) -> None:
        name = f"out{len(self.stores)}"
        shape = out.shape if shape is None else tuple(shape)
        strides = out.estrides if strides is None else tuple(strides)
        self.stores.append(Store(name, value, out.tdtype, shape, strides, out.offset))
        self.arrays[name] = out

    def launch(self) -> None:
        spec = KernelSpec(self.name, self.shape, tuple(self.loads), tuple(self.body), tuple(self.stores),
                          self.reduce_ndim)
        eager._launch(spec, self.arrays)  # (looked up on the module: tests record launches by patching it)


# ---- layouts --------------------------------------------------------------------------------------
def _last(seq: Sequence, dims: Sequence[int]) -> tuple:
    """seq with the entries at `dims` moved to the end (the order of the rest kept)."""
    keep = [v for i, v in enumerate(seq) if i not in dims]
    return tuple(keep) + tuple(seq[i] for i in dims)


def _like(x: DeviceArray, dtype: D.DType) -> DeviceArray:
    """New memory for an output shaped like x in x's memory order (torch's empty_like)."""
    from ...ops.shape_util import pointwise_strides

    return eager.empty(x.shape, dtype, pointwise_strides(x.shape, [(x.shape, x.estrides)]))


def _row_view(d: DeviceArray):
    """(shape, strides) of a per-row array (rows...) read against a (rows..., n) kernel: one value a row."""
    return d.shape + (1,), d.estrides + (0,)


def _classes(c: int) -> DeviceArray:
    """The class numbers 0..c-1 on the device: what a target is compared with to pick its class.

    (A small host-to-device copy per call: the op table has no arange primitive to build it
    in a kernel, and a buffer cached across calls would outlive the tensors that needed it.)"""
    return eager.from_host(np.arange(c, dtype=np.int64), D.int64)


def _float_ct(dtype: D.DType) -> D.DType:
    """The dtype a kernel computes `dtype` values in (float16/bfloat16 in float32, as torch does)."""
    if dtype.category != D._FLOAT:
        raise LoweringError(f"{dtype.name} input: the kernel is written for floating-point values")
    return compute_dtype(dtype)


def check_targets(t: DeviceArray, c: int, ignore: int) -> None:
    """torch's IndexError for a class target outside [0, c) that is not ignore_index: one kernel
    takes the largest offending target (or int64's minimum when there is none) and it is read back.
    (torch's CUDA kernels stop at a device-side assert instead; its CPU ones raise this error.)"""
    if t.size == 0:
        return
    flat = t if t.ndim else DeviceArray(t.buffer, (1,), (1,), t.offset, t.tdtype)
    nd = flat.ndim
    none = -(1 << 63)
    k = Kernel("check_targets", flat.shape, nd)
    k.load("t", flat)
    k.step("lo", "lt", "t", 0, dtype=D.bool_)
    k.step("hi", "ge", "t", c, dtype=D.bool_)
    k.step("out", "logical_or", "lo", "hi", dtype=D.bool_)
    k.step("kept", "ne", "t", ignore, dtype=D.bool_)
    k.step("bad", "logical_and", "out", "kept", dtype=D.bool_)
    k.step("v", "where", "bad", "t", none, dtype=D.int64)
    k.step("worst", "amax", "v", dims=tuple(range(nd)), keepdim=True, dtype=D.int64)
    res = eager.empty((), D.int64)
    k.store("worst", res, (), ())
    k.launch()
    worst = int(eager.to_host(res))
    if worst != none:
        raise IndexError(f"Target {worst} is out of bounds.")


# ---- softmax and log_softmax ------------------------------------------------------------------------
def _softmax_kernel(name: str, x: DeviceArray, dim: int, dtype: D.DType, log: bool) -> DeviceArray:
    nd = x.ndim
    dim %= nd
    out = _like(x, dtype)
    if out.size == 0:
        return out
    ct = _float_ct(dtype)
    k = Kernel(name, _last(x.shape, [dim]), 1)
    k.load("x", x, k.shape, _last(x.estrides, [dim]))
    last = (nd - 1,)
    k.step("m", "amax", "x", dims=last, keepdim=True, dtype=ct)
    k.step("s", "sub", "x", "m", dtype=ct, compute=ct)
    k.step("e", "exp", "s", dtype=ct, compute=ct)
    k.step("se", "sum", "e", dims=last, keepdim=True, dtype=ct)
    if log:
        k.step("lse", "log", "se", dtype=ct, compute=ct)
        k.step("y", "sub", "s", "lse", dtype=ct, compute=ct)
    else:
        k.step("y", "div", "e", "se", dtype=ct, compute=ct)
    k.store("y", out, k.shape, _last(out.estrides, [dim]))
    k.launch()
    return out


def softmax(args, attrs, dtype, compute):
    """y = exp(x - max) / sum(exp(x - max)) along attrs['dim']."""
    return [_softmax_kernel("softmax", args[0]._data, attrs["dim"], dtype, False)]


def log_softmax(args, attrs, dtype, compute):
    """y = (x - max) - log(sum(exp(x - max))) along attrs['dim']."""
    return [_softmax_kernel("log_softmax", args[0]._data, attrs["dim"], dtype, True)]


def _softmax_backward_kernel(name: str, g: DeviceArray, y: DeviceArray, dim: int, dtype: D.DType,
                             log: bool) -> DeviceArray:
    nd = y.ndim
    dim %= nd
    out = _like(y, dtype)
    if out.size == 0:
        return out
    ct = _float_ct(dtype)
    k = Kernel(name, _last(y.shape, [dim]), 1)
    k.load("g", g, k.shape, _last(g.estrides, [dim]))  # (the gradient of a sum is a stride-0 expand)
    k.load("y", y, k.shape, _last(y.estrides, [dim]))
    last = (nd - 1,)
    if log:  # torch's formula: g - exp(y) * sum(g)
        k.step("sg", "sum", "g", dims=last, keepdim=True, dtype=ct)
        k.step("p", "exp", "y", dtype=ct, compute=ct)
        k.step("ps", "mul", "p", "sg", dtype=ct, compute=ct)
        k.step("dx", "sub", "g", "ps", dtype=ct, compute=ct)
    else:  # torch's formula: y * (g - sum(g * y))
        k.step("gy", "mul", "g", "y", dtype=ct, compute=ct)
        k.step("sgy", "sum", "gy", dims=last, keepdim=True, dtype=ct)
        k.step("d", "sub", "g", "sgy", dtype=ct, compute=ct)
        k.step("dx", "mul", "d", "y", dtype=ct, compute=ct)
    k.store("dx", out, k.shape, _last(out.estrides, [dim]))
    k.launch()
    return out


def softmax_backward(args, attrs, dtype, compute):
    g, y = (a._data for a in args)
    return [_softmax_backward_kernel("softmax_backward", g, y, attrs.get("dim", 1), dtype, False)]


def log_softmax_backward(args, attrs, dtype, compute):
    g, y = (a._data for a in args)
    return [_softmax_backward_kernel("log_softmax_backward", g, y, attrs.get("dim", 1), dtype, True)]


# ---- reducing per-row losses ----------------------------------------------------------------------
def _reduce_rows(name: str, loss: DeviceArray, weight: DeviceArray | None, reduction: str,
                 dtype: D.DType, wsum: DeviceArray | None = None) -> DeviceArray:
    """The loss tensor a loss returns from its per-row losses: as they are ('none'), their sum,
    or their sum over the sum of the rows' weights ('mean'; weight None counts rows).

    For 'mean' with weights, `wsum` (a 0-d array) also receives the weights' sum, which
    a backward divides by: stored here it costs the backward no reduction of its own."""
    if reduction == "none":
        if loss.tdtype is dtype:
            return loss
        return eager.copy_array(loss, dtype)
    out = eager.empty((), dtype)
    ct = compute_dtype(dtype)
    if loss.ndim == 0:  # one row (an unbatched input): a reduction needs a dim to reduce
        loss = DeviceArray(loss.buffer, (1,), (1,), loss.offset, loss.tdtype)
        weight = None if weight is None else DeviceArray(weight.buffer, (1,), (1,), weight.offset, weight.tdtype)
    if loss.size == 0:  # an empty sum is 0, an empty mean 0 / 0
        eager.write(out, 0.0 if reduction == "sum" else math.nan)
        if wsum is not None:
            eager.write(wsum, 0.0)
        return out
    nd = loss.ndim
    k = Kernel(f"{name}_{reduction}", loss.shape, nd)
    k.load("loss", loss)
    every = tuple(range(nd))
    k.step("total", "sum", "loss", dims=every, keepdim=False, dtype=ct)
    if reduction == "sum":
        k.store("total", out, (), ())
    elif weight is None:
        k.step("y", "mean", "loss", dims=every, keepdim=False, dtype=ct)
        k.store("y", out, (), ())
    else:
        k.load("w", weight)
        k.step("wsum", "sum", "w", dims=every, keepdim=False, dtype=ct)
        k.step("y", "div", "total", "wsum", dtype=ct, compute=ct)
        k.store("y", out, (), ())
        if wsum is not None:
            k.store("wsum", wsum, (), ())
    k.launch()
    return out


# ---- cross_entropy: log_softmax and nll_loss in one row kernel ------------------------------------
def cross_entropy(args, attrs, dtype, compute):
    """(N, C) logits, (N,) int64 class targets: per row log(sum(exp(x - m))) + m - x[t], then reduced.

    What the backward needs (the logits, each row's logsumexp, the targets and the
    number of rows that count) goes into attrs['keep'], as the host version keeps its
    intermediates there. Targets are bounds-checked first (check_targets)."""
    x, t = args[0]._data, args[1]._data
    if t.tdtype is not D.int64 or x.ndim != 2:
        raise LoweringError("cross_entropy takes (N, C) logits and (N,) int64 targets")
    ignore, reduction = attrs.get("ignore_index", -100), attrs.get("reduction", "mean")
    check_targets(t, x.shape[1], ignore)
    ct = _float_ct(dtype)
    n, c = x.shape
    lse = eager.empty((n,), ct)
    loss = eager.empty((n,), ct)
    valid = eager.empty((n,), ct)
    if n:
        k = Kernel("cross_entropy", (n, c), 1)
        k.load("x", x)
        k.load("t", t, *_row_view(t))
        k.load("cls", _classes(c))
        last = (1,)
        k.step("m", "amax", "x", dims=last, keepdim=True, dtype=ct)
        k.step("s", "sub", "x", "m", dtype=ct, compute=ct)
        k.step("e", "exp", "s", dtype=ct, compute=ct)
        k.step("se", "sum", "e", dims=last, keepdim=True, dtype=ct)
        k.step("lse0", "log", "se", dtype=ct, compute=ct)
        k.step("lse", "add", "lse0", "m", dtype=ct, compute=ct)
        k.step("hit", "eq", "cls", "t", dtype=D.bool_)
        k.step("xt_all", "where", "hit", "x", 0.0, dtype=ct)
        k.step("xt", "sum", "xt_all", dims=last, keepdim=True, dtype=ct)
        k.step("nll", "sub", "lse", "xt", dtype=ct, compute=ct)
        k.step("ok", "ne", "t", ignore, dtype=D.bool_)
        k.step("loss", "where", "ok", "nll", 0.0, dtype=ct)
        k.cast("okf", "ok", ct)
        k.store("lse", lse, (n,), (1,))
        k.store("loss", loss, (n,), (1,))
        k.store("okf", valid, (n,), (1,))
        k.launch()
    count = eager.empty((), ct) if reduction == "mean" else None
    out = _reduce_rows("cross_entropy", loss, valid, reduction, dtype, count)
    keep = attrs.get("keep")
    if keep is not None:  # 4 entries, as the host version keeps (its backward unpacks them first)
        keep.append((x, lse, t, (valid, count)))
    return [out]


def cross_entropy_backward(args, attrs, dtype, compute):
    """d loss / d x = (softmax(x) - one_hot(t)) * g, per row, zero for ignored rows; / rows for 'mean'."""
    keep = attrs.get("keep") or ()
    if not keep or not isinstance(keep[0][0], DeviceArray):
        raise LoweringError("cross_entropy_backward without the forward's device intermediates")
    x, lse, t, (valid, count) = keep[0]
    g = args[0]._data
    reduction = attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    n, c = x.shape
    out = eager.empty((n, c), dtype)
    if out.size == 0:
        return [out]
    k = Kernel("cross_entropy_backward", (n, c), 0)
    k.load("x", x)
    k.load("lse", lse, *_row_view(lse))
    k.load("t", t, *_row_view(t))
    k.load("cls", _classes(c))
    k.load("ok", valid, *_row_view(valid))
    if reduction == "none":
        k.load("g", g, *_row_view(g))
        coef = "g"
    else:
        k.load("g", g)  # 0-d: broadcast to every element
        coef = "g"
        if reduction == "mean":
            k.load("count", count)
            coef = k.step("gc", "div", "g", "count", dtype=ct, compute=ct)
    k.step("z", "sub", "x", "lse", dtype=ct, compute=ct)
    k.step("p", "exp", "z", dtype=ct, compute=ct)
    k.step("hit", "eq", "cls", "t", dtype=D.bool_)
    k.cast("hitf", "hit", ct)
    k.step("q", "sub", "p", "hitf", dtype=ct, compute=ct)
    # (a where, not a product with the 0/1 mask: 'mean' over no rows divides by 0, and torch's gradient is 0)
    k.step("okb", "ne", "ok", 0.0, dtype=D.bool_)
    k.step("qg", "mul", "q", coef, dtype=ct, compute=ct)
    k.step("dx", "where", "okb", "qg", 0.0, dtype=ct)
    k.store("dx", out)
    k.launch()
    return [out]


# ---- nll_loss: the target's log-probability per row -------------------------------------------------
def _nll_layout(shape: Sequence[int]):
    """(class dim, the other dims in order) of an nll_loss input: (C,), (N, C) or (N, C, d...)."""
    cdim = 0 if len(shape) == 1 else 1
    return cdim, [i for i in range(len(shape)) if i != cdim]


def nll_loss(args, attrs, dtype, compute):
    """-w[t] * x[t] per row (0 where t is ignore_index), then reduced; 'mean' divides by sum of w[t]."""
    x, t = args[0]._data, args[1]._data
    w = args[2]._data if args[2] is not None else None
    if t.tdtype is not D.int64:
        raise LoweringError("nll_loss with non-int64 targets")
    ignore, reduction = attrs.get("ignore_index", -100), attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    cdim, rest = _nll_layout(x.shape)
    c = x.shape[cdim]
    check_targets(t, c, ignore)
    rows = tuple(x.shape[i] for i in rest)
    loss = eager.empty(rows, ct)
    wt = eager.empty(rows, ct)
    if loss.size:
        if c == 0:
            raise LoweringError("nll_loss over no classes")
        k = Kernel("nll_loss", rows + (c,), 1)
        k.load("x", x, k.shape, _last(x.estrides, [cdim]))
        k.load("t", t, rows + (1,), t.estrides + (0,))
        k.load("cls", _classes(c))
        last = (len(rows),)
        k.step("hit", "eq", "cls", "t", dtype=D.bool_)
        k.step("ok", "ne", "t", ignore, dtype=D.bool_)
        k.step("xt_all", "where", "hit", "x", 0.0, dtype=ct)
        k.step("xt", "sum", "xt_all", dims=last, keepdim=True, dtype=ct)
        if w is not None:
            k.load("w", w)
            k.step("wt_all", "where", "hit", "w", 0.0, dtype=ct)
            k.step("wt0", "sum", "wt_all", dims=last, keepdim=True, dtype=ct)
            k.step("wt", "where", "ok", "wt0", 0.0, dtype=ct)
        else:
            k.cast("wt", "ok", ct)
        k.step("xw", "mul", "xt", "wt", dtype=ct, compute=ct)
        k.step("loss", "neg", "xw", dtype=ct, compute=ct)
        k.store("loss", loss, rows, contiguous_strides(rows))
        k.store("wt", wt, rows, contiguous_strides(rows))
        k.launch()
    if reduction == "none" and len(x.shape) == 1:
        loss = DeviceArray(loss.buffer, (), (), loss.offset, loss.tdtype)
    return [_reduce_rows("nll_loss", loss, wt, reduction, dtype)]


def nll_loss_backward(args, attrs, dtype, compute):
    """-w[t] * g at each row's target class, zero elsewhere (g spread over sum of w[t] for 'mean')."""
    g, t = args[0]._data, args[1]._data
    w = args[2]._data if args[2] is not None else None
    shape = tuple(attrs["shape"])
    ignore, reduction = attrs.get("ignore_index", -100), attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    cdim, rest = _nll_layout(shape)
    c = shape[cdim]
    rows = tuple(shape[i] for i in rest)
    out = eager.empty(shape, dtype)
    if out.size == 0:
        return [out]
    trows = (rows + (1,), t.estrides[-len(rows):] + (0,) if rows else (0,))
    if t.ndim != len(rows):
        raise LoweringError("nll_loss_backward: targets do not match the input's rows")
    kshape = rows + (c,)
    k = Kernel("nll_loss_backward", kshape, 0)
    k.load("t", t, *trows)
    k.load("cls", _classes(c))
    k.step("hit", "eq", "cls", "t", dtype=D.bool_)
    k.step("ok", "ne", "t", ignore, dtype=D.bool_)
    k.step("pick", "logical_and", "hit", "ok", dtype=D.bool_)
    if reduction == "none":
        k.load("g", g, rows + (1,), (g.estrides + (0,)) if g.ndim == len(rows) else (0,) * (len(rows) + 1))
    else:
        k.load("g", g)
    coef = "g"
    if reduction == "mean":
        k.load("total", _nll_total_weight(t, w, c, ignore, ct))
        coef = k.step("gm", "div", "g", "total", dtype=ct, compute=ct)
    if w is not None:
        k.load("w", w)
        coef = k.step("gw", "mul", coef, "w", dtype=ct, compute=ct)
    k.step("ng", "neg", coef, dtype=ct, compute=ct)
    k.step("dx", "where", "pick", "ng", 0.0, dtype=ct)
    k.store("dx", out, kshape, _last(out.estrides, [cdim]))
    k.launch()
    return [out]


def _nll_total_weight(t: DeviceArray, w: DeviceArray | None, c: int, ignore: int, ct: D.DType) -> DeviceArray:
    """sum over rows of w[t] (1 without weights), ignored rows left out: what 'mean' divides by."""
    out = eager.empty((), ct)
    if t.size == 0:
        eager.write(out, 0.0)
        return out
    if t.ndim == 0:  # one unbatched row: a reduction needs a dim to reduce
        t = DeviceArray(t.buffer, (1,), (1,), t.offset, t.tdtype)
    nd = t.ndim
    if w is None:
        k = Kernel("nll_loss_count", t.shape, nd)
        k.load("t", t)
        k.step("ok", "ne", "t", ignore, dtype=D.bool_)
        k.cast("okf", "ok", ct)
        k.step("total", "sum", "okf", dims=tuple(range(nd)), keepdim=False, dtype=ct)
    else:
        k = Kernel("nll_loss_total_weight", t.shape + (c,), nd + 1)
        k.load("t", t, *_row_view(t))
        k.load("cls", _classes(c))
        k.load("w", w)
        k.step("hit", "eq", "cls", "t", dtype=D.bool_)
        k.step("ok", "ne", "t", ignore, dtype=D.bool_)
        k.step("pick", "logical_and", "hit", "ok", dtype=D.bool_)
        k.step("wt", "where", "pick", "w", 0.0, dtype=ct)
        k.step("total", "sum", "wt", dims=tuple(range(nd + 1)), keepdim=False, dtype=ct)
    k.store("total", out, (), ())
    k.launch()
    return out


# ---- mse_loss -----------------------------------------------------------------------------------
def mse_loss(args, attrs, dtype, compute):
    """(x - t)^2 elementwise, summed or averaged over every element in the same kernel."""
    x, t = (eager._device_value(a) for a in args[:2])
    reduction = attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    shape = tuple(np.broadcast_shapes(x.shape, t.shape))
    if reduction == "none":
        out = eager.empty(shape, dtype)
        if out.size == 0:
            return [out]
        k = Kernel("mse_loss", shape, 0)
    else:
        out = eager.empty((), dtype)
        if not shape or math.prod(shape) == 0:
            raise LoweringError("mse_loss reduced over no dims or no elements")
        k = Kernel(f"mse_loss_{reduction}", shape, len(shape))
    k.load("x", x)
    k.load("t", t)
    k.step("d", "sub", "x", "t", dtype=ct, compute=ct)
    k.step("sq", "mul", "d", "d", dtype=ct, compute=ct)
    if reduction == "none":
        k.store("sq", out)
    else:
        k.step("y", "sum" if reduction == "sum" else "mean", "sq", dims=tuple(range(len(shape))), keepdim=False,
               dtype=ct)
        k.store("y", out, (), ())
    k.launch()
    return [out]


# ---- layer_norm -------------------------------------------------------------------------------------
def _standardize(k: Kernel, red: tuple, eps: float, ct: D.DType) -> None:
    """The statistics layer_norm and batch_norm share, over the dims `red` of the load "x":
    mu = mean(x), xc = x - mu, rstd = 1 / sqrt(mean(xc * xc) + eps) (the biased variance)."""
    k.step("mu", "mean", "x", dims=red, keepdim=True, dtype=ct)
    k.step("xc", "sub", "x", "mu", dtype=ct, compute=ct)
    k.step("sq", "mul", "xc", "xc", dtype=ct, compute=ct)
    k.step("var", "mean", "sq", dims=red, keepdim=True, dtype=ct)
    k.step("ve", "add", "var", eps, dtype=ct, compute=ct)
    k.step("rstd", "rsqrt", "ve", dtype=ct, compute=ct)


def layer_norm(args, attrs, dtype, compute):
    """Over the last attrs['ndims'] dims: y = (x - mean) * rsqrt(var + eps) * w + b, with mean and rstd
    (keepdim shapes) as the second and third outputs, all from one row kernel."""
    x = args[0]._data
    w = args[1]._data if args[1] is not None else None
    b = args[2]._data if args[2] is not None else None
    nred = attrs.get("ndims", 1)
    eps = float(attrs.get("eps", 1e-5))
    dts = dtype if isinstance(dtype, tuple) else (dtype,) * 3
    ct = _float_ct(dts[0])
    nd = x.ndim
    stat_shape = x.shape[:nd - nred] + (1,) * nred
    y = eager.empty(x.shape, dts[0])
    mean = eager.empty(stat_shape, dts[1])
    rstd = eager.empty(stat_shape, dts[2])
    if x.size == 0 or nred == 0:
        if x.size == 0 and nred:
            return [y, mean, rstd]
        raise LoweringError("layer_norm over no dims")
    k = Kernel("layer_norm", x.shape, nred)
    k.load("x", x)
    red = tuple(range(nd - nred, nd))
    _standardize(k, red, eps, ct)
    v = k.step("xh", "mul", "xc", "rstd", dtype=ct, compute=ct)
    if w is not None:
        k.load("w", w)
        v = k.step("xw", "mul", v, "w", dtype=ct, compute=ct)
    if b is not None:
        k.load("b", b)
        v = k.step("xb", "add", v, "b", dtype=ct, compute=ct)
    k.store(v, y)
    k.store("mu", mean)
    k.store("rstd", rstd)
    k.launch()
    return [y, mean, rstd]


# ---- cat / stack ----------------------------------------------------------------------------------
def _slice(out: DeviceArray, dim: int, start: int, n: int) -> DeviceArray:
    shape = out.shape[:dim] + (n,) + out.shape[dim + 1:]
    return DeviceArray(out.buffer, shape, out.estrides, out.offset + start * out.estrides[dim], out.tdtype)


def cat(args, attrs, dtype, compute):
    """One copy kernel per input into its slice of a row-major output (casting to the result dtype)."""
    xs = [a._data for a in args[0]]
    dim = attrs.get("dim", 0)
    ref = xs[0]
    dim %= max(ref.ndim, 1)
    shape = list(ref.shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    out = eager.empty(tuple(shape), dtype)
    start = 0
    for x in xs:
        n = x.shape[dim]
        if n and x.size:
            eager.copy_into(_slice(out, dim, start, n), x)
        start += n
    return [out]


def stack(args, attrs, dtype, compute):
    """cat of the inputs, each given a new size-1 dim at attrs['dim']."""
    xs = [a._data for a in args[0]]
    dim = attrs.get("dim", 0) % (xs[0].ndim + 1)
    shape = xs[0].shape[:dim] + (len(xs),) + xs[0].shape[dim:]
    out = eager.empty(shape, dtype)
    for i, x in enumerate(xs):
        if x.size:
            eager.copy_into(_slice(out, dim, i, 1), DeviceArray(
                x.buffer, x.shape[:dim] + (1,) + x.shape[dim:], x.estrides[:dim] + (0,) + x.estrides[dim:],
                x.offset, x.tdtype))
    return [out]



# ---- reductions with more than one primitive: logsumexp, var/std, max/argmax over a dim ----------------
def _reduction(name: str, x: DeviceArray, dims: Sequence[int], keepdim: bool, out_dtypes: Sequence[D.DType]):
    """A row kernel over x with `dims` permuted last, and its outputs: (kernel, outputs, rows shape).

    Each output has the reduction's shape (size-1 dims kept with keepdim); the kernel
    stores them row-major over the kept dims, which is the same memory either way."""
    nd = x.ndim
    dims = sorted({d % nd for d in dims}) if nd else []
    if not dims or x.size == 0:  # nothing reduced, or an empty reduction (an identity or torch's error)
        raise LoweringError(f"{name} over no dims or no elements")
    keep = [i for i in range(nd) if i not in dims]
    rows = tuple(x.shape[i] for i in keep)
    final = tuple(1 if i in dims else x.shape[i] for i in range(nd)) if keepdim else rows
    outs = [eager.empty(final, dt) for dt in out_dtypes]
    k = Kernel(name, _last(x.shape, dims), len(dims))
    k.load("x", x, k.shape, _last(x.estrides, dims))
    return k, outs, rows, tuple(range(len(keep), nd))


def _store_rows(k: Kernel, value: str, out: DeviceArray, rows) -> None:
    k.store(value, out, rows, contiguous_strides(rows))


def logsumexp(args, attrs, dtype, compute):
    """m + log(sum(exp(x - m))) with m the max over the dims (0 where it is infinite, as torch shifts)."""
    x = args[0]._data
    ct = _float_ct(dtype)
    k, (out,), rows, red = _reduction("logsumexp", x, attrs["dims"], attrs.get("keepdim", False), [dtype])
    k.step("m", "amax", "x", dims=red, keepdim=True, dtype=ct)
    k.step("fin", "isfinite", "m", dtype=D.bool_)
    k.step("mf", "where", "fin", "m", 0.0, dtype=ct)
    k.step("s", "sub", "x", "mf", dtype=ct, compute=ct)
    k.step("e", "exp", "s", dtype=ct, compute=ct)
    k.step("se", "sum", "e", dims=red, keepdim=True, dtype=ct)
    k.step("l", "log", "se", dtype=ct, compute=ct)
    k.step("y", "add", "l", "mf", dtype=ct, compute=ct)
    _store_rows(k, "y", out, rows)
    k.launch()
    return [out]


def var(args, attrs, dtype, compute):
    """sum((x - mean)^2) / max(0, n - correction) in two passes over each row (sqrt of it for std)."""
    x = args[0]._data
    ct = _float_ct(dtype)
    k, (out,), rows, red = _reduction("std" if attrs.get("sqrt") else "var", x, attrs["dims"],
                                      attrs.get("keepdim", False), [dtype])
    n = math.prod(k.shape[len(rows):])
    k.step("mu", "mean", "x", dims=red, keepdim=True, dtype=ct)
    k.step("xc", "sub", "x", "mu", dtype=ct, compute=ct)
    k.step("sq", "mul", "xc", "xc", dtype=ct, compute=ct)
    k.step("ss", "sum", "sq", dims=red, keepdim=True, dtype=ct)
    # no degrees of freedom divides by 0: inf or nan, as torch gives
    k.step("v", "div", "ss", float(max(0, n - attrs.get("correction", 1))), dtype=ct, compute=ct)
    y = k.step("sd", "sqrt", "v", dtype=ct, compute=ct) if attrs.get("sqrt") else "v"
    _store_rows(k, y, out, rows)
    k.launch()
    return [out]


def _arg_extreme(k: Kernel, is_max: bool, red, n: int, flat_shape=None) -> str:
    """The index of each row's first max (min): the smallest index where x equals it, or is NaN
    (max and min propagate NaN, and torch points at the first NaN)."""
    idx = _classes(n)
    if flat_shape is None:
        k.load("idx", idx)
    else:  # every dim reduced: the flat index, laid out like x
        k.load("idx", idx, flat_shape, contiguous_strides(flat_shape))
    k.step("m", "amax", "x", dims=red, keepdim=True, is_max=is_max)
    k.step("at", "eq", "x", "m", dtype=D.bool_)
    k.step("nan", "isnan", "x", dtype=D.bool_)
    k.step("hit", "logical_or", "at", "nan", dtype=D.bool_)
    k.step("cand", "where", "hit", "idx", n, dtype=D.int64)
    k.step("first", "amax", "cand", dims=red, keepdim=True, is_max=False, dtype=D.int64)
    return "first"


def max_dim(args, attrs, dtype, compute):
    """(values, indices) of the max (min) along attrs['dim'], in one row kernel."""
    x = args[0]._data
    if x.tdtype is D.bool_ or x.ndim == 0:
        raise LoweringError("max over a dim of a bool or 0-d tensor")
    dts = dtype if isinstance(dtype, tuple) else (x.tdtype, D.int64)
    dim = attrs["dim"] % x.ndim
    k, (vals, idx), rows, red = _reduction("max_dim", x, [dim], attrs.get("keepdim", False), dts)
    first = _arg_extreme(k, attrs.get("is_max", True), red, x.shape[dim])
    _store_rows(k, "m", vals, rows)
    _store_rows(k, first, idx, rows)
    k.launch()
    return [vals, idx]


def argmax(args, attrs, dtype, compute):
    """The index of the max (min) along attrs['dim'], or into the flattened tensor for dim None."""
    x = args[0]._data
    if x.tdtype is D.bool_ or x.ndim == 0:
        raise LoweringError("argmax of a bool or 0-d tensor")
    dim, keepdim = attrs.get("dim"), attrs.get("keepdim", False)
    if dim is None:
        k, (out,), rows, red = _reduction("argmax_all", x, range(x.ndim), False, [D.int64])
        first = _arg_extreme(k, attrs.get("is_max", True), red, x.size, x.shape)
        if keepdim:
            out = DeviceArray(out.buffer, (1,) * x.ndim, (0,) * x.ndim, out.offset, D.int64)
    else:
        k, (out,), rows, red = _reduction("argmax", x, [dim], keepdim, [D.int64])
        first = _arg_extreme(k, attrs.get("is_max", True), red, x.shape[dim % x.ndim])
    _store_rows(k, first, out, rows)
    k.launch()
    return [out]



# ---- nansum, norm, any/all: row kernels with an identity for empty reductions ---------------------
def _rows_or_identity(name: str, x: DeviceArray, dims: Sequence[int], keepdim: bool, dtype: D.DType, identity):
    """`_reduction`'s (kernel, [out], rows, reduced dims), or (None, [out], ...) with out already filled
    with `identity` when there is nothing to read (an empty input: torch's empty sum is 0, its any False).

    Reducing no dims (a 0-d input, or any/all's explicit dim=()) reduces a size-1 dim added at
    the end instead: each row of one element is its own result, and the kernel stays a row kernel."""
    from .movement import fill

    nd = x.ndim
    dims = sorted({d % nd for d in dims}) if nd else []
    if not dims:
        x = DeviceArray(x.buffer, x.shape + (1,), x.estrides + (1,), x.offset, x.tdtype)
        dims, keepdim = [nd], False
    if x.size == 0:
        final = tuple(1 if i in dims else n for i, n in enumerate(x.shape)) if keepdim else \
            tuple(n for i, n in enumerate(x.shape) if i not in dims)
        out = eager.empty(final, dtype)
        fill(out, identity)
        return None, [out], None, None
    k, outs, rows, red = _reduction(name, x, dims, keepdim, [dtype])
    return k, outs, rows, red


def nansum(args, attrs, dtype, compute):
    """sum(where(isnan(x), 0, x)) over attrs['dims'] (an integer tensor has no NaN: a plain sum)."""
    from ...ops.table import OPS

    x = args[0]._data
    if x.tdtype.category != D._FLOAT:  # no NaN to skip: a plain sum
        if x.size:
            return [eager.reduce(OPS["sum"], x, attrs, dtype, compute)]
    elif dtype.category != D._FLOAT:
        raise LoweringError("nansum of a floating-point tensor into an integer dtype")
    k, (out,), rows, red = _rows_or_identity("nansum", x, attrs["dims"], attrs.get("keepdim", False), dtype, 0)
    if k is None:  # an empty input: out holds the identity already
        return [out]
    ct = _float_ct(dtype)
    k.step("nan", "isnan", "x", dtype=D.bool_)
    k.step("x0", "where", "nan", 0.0, "x", dtype=ct)
    k.step("y", "sum", "x0", dims=red, keepdim=True, dtype=ct)
    _store_rows(k, "y", out, rows)
    k.launch()
    return [out]


def norm(args, attrs, dtype, compute):
    """The vector p-norm over attrs['dims'] from |x|: its max (inf) or min (-inf), the count of
    non-zeros (0), the sum (1), sqrt of the sum of squares (2), else sum(|x|^p)^(1/p)."""
    x = args[0]._data
    p = float(attrs["p"])
    ct = _float_ct(dtype)
    if p < 0 and x.size == 0:  # no identity: the public function raises torch's error before this
        raise LoweringError(f"the {p} norm of an empty tensor")
    k, (out,), rows, red = _rows_or_identity("norm", x, attrs["dims"], attrs.get("keepdim", False), dtype, 0.0)
    if k is None:
        return [out]
    k.step("a", "abs", "x", dtype=ct, compute=ct)
    if math.isinf(p):
        y = k.step("y", "amax", "a", dims=red, keepdim=True, is_max=p > 0, dtype=ct)
    elif p == 0:
        k.step("nz", "ne", "a", 0.0, dtype=D.bool_)
        k.cast("nzf", "nz", ct)
        y = k.step("y", "sum", "nzf", dims=red, keepdim=True, dtype=ct)
    elif p == 1:
        y = k.step("y", "sum", "a", dims=red, keepdim=True, dtype=ct)
    elif p == 2:
        k.step("sq", "mul", "a", "a", dtype=ct, compute=ct)
        k.step("ss", "sum", "sq", dims=red, keepdim=True, dtype=ct)
        y = k.step("y", "sqrt", "ss", dtype=ct, compute=ct)
    else:
        k.step("ap", "pow", "a", p, dtype=ct, compute=ct)
        k.step("s", "sum", "ap", dims=red, keepdim=True, dtype=ct)
        y = k.step("y", "pow", "s", 1.0 / p, dtype=ct, compute=ct)
    _store_rows(k, y, out, rows)
    k.launch()
    return [out]


def _any_all(name: str, is_any: bool):
    def handler(args, attrs, dtype, compute):
        x = args[0]._data
        k, (out,), rows, red = _rows_or_identity(name, x, attrs["dims"], attrs.get("keepdim", False), dtype,
                                                 not is_any)
        if k is None:
            return [out]
        # the max (any) or min (all) of the elements' truth as 0/1; NaN counts as true, as in torch
        k.step("nz", "ne", "x", 0, dtype=D.bool_)
        k.cast("nzi", "nz", D.int32)
        k.step("m", "amax", "nzi", dims=red, keepdim=True, is_max=is_any, dtype=D.int32)
        k.step("y", "ne", "m", 0, dtype=D.bool_)
        _store_rows(k, "y", out, rows)
        k.launch()
        return [out]

    handler.__doc__ = f"torch.{name}: whether {'any' if is_any else 'every'} element over attrs['dims'] is non-zero."
    handler.__name__ = name
    return handler


# ---- smooth_l1 / huber, binary cross entropy (on probabilities and on logits) ----------------------
def _loss_kernel(name: str, operands: dict, reduction: str, dtype: D.DType):
    """(kernel, out) for an elementwise loss over its operands broadcast together, each loaded
    under its name (a None operand is left out), or (None, out) when out needs no kernel.

    'none' is a pointwise kernel; 'sum'/'mean' reduce every dim in the same kernel (a 0-d loss
    is read as one element of a (1,) row, so it still has a dim to reduce)."""
    from .movement import fill

    present = {n: a for n, a in operands.items() if a is not None}
    shape = tuple(np.broadcast_shapes(*(a.shape for a in present.values())))
    if reduction == "none":
        out = eager.empty(shape, dtype)
        k = None if out.size == 0 else Kernel(name, shape, 0)
    else:
        out = eager.empty((), dtype)
        if math.prod(shape) == 0:  # an empty sum is 0, an empty mean 0 / 0
            fill(out, 0.0 if reduction == "sum" else math.nan)
            return None, out
        shape = shape or (1,)
        k = Kernel(f"{name}_{reduction}", shape, len(shape))
    if k is not None:
        for n, a in present.items():
            k.load(n, a)
    return k, out


def _finish_loss(k: Kernel, value: str, out: DeviceArray, reduction: str, ct: D.DType) -> None:
    if reduction == "none":
        k.store(value, out)
    else:
        k.step("total", "sum" if reduction == "sum" else "mean", value, dims=tuple(range(len(k.shape))),
               keepdim=False, dtype=ct)
        k.store("total", out, (), ())
    k.launch()


def smooth_l1_loss(args, attrs, dtype, compute):
    """|x - t| < beta ? 0.5 (x - t)^2 / beta : |x - t| - beta / 2 (huber: 0.5 d^2, else beta (|d| - beta / 2)),
    reduced in the same kernel."""
    x, t = (eager._device_value(a) for a in args[:2])
    reduction, beta, huber = attrs.get("reduction", "mean"), float(attrs.get("beta", 1.0)), attrs.get("huber")
    ct = _float_ct(dtype)
    k, out = _loss_kernel("smooth_l1_loss", {"x": x, "t": t}, reduction, dtype)
    if k is None:
        return [out]
    k.step("d", "sub", "x", "t", dtype=ct, compute=ct)
    loss = k.step("a", "abs", "d", dtype=ct, compute=ct)
    if huber or beta != 0:
        k.step("in", "lt", "a", beta, dtype=D.bool_)
        k.step("h", "mul", "a", 0.5, dtype=ct, compute=ct)
        k.step("q", "mul", "h", "a", dtype=ct, compute=ct)
        k.step("l", "sub", "a", 0.5 * beta, dtype=ct, compute=ct)
        if huber:
            k.step("lb", "mul", "l", beta, dtype=ct, compute=ct)
            loss = k.step("loss", "where", "in", "q", "lb", dtype=ct)
        else:
            k.step("qb", "div", "q", beta, dtype=ct, compute=ct)
            loss = k.step("loss", "where", "in", "qb", "l", dtype=ct)
    _finish_loss(k, loss, out, reduction, ct)
    return [out]


_BCE_RANGE = "all elements of input should be between 0 and 1"


def binary_cross_entropy(args, attrs, dtype, compute):
    """(t - 1) max(log(1 - p), -100) - t max(log p, -100), times the weight, reduced in the same kernel.

    torch refuses a p outside [0, 1]; the kernel also computes whether any p is (a flag it
    stores), and the host reads that one value back to raise torch's error. That read waits
    for the kernel: the price of the error torch gives, where its CUDA kernel asserts."""
    p, t = (eager._device_value(a) for a in args[:2])
    w = eager._device_value(args[2]) if args[2] is not None else None
    reduction = attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    k, out = _loss_kernel("binary_cross_entropy", {"p": p, "t": t, "w": w}, reduction, dtype)
    if k is None:
        return [out]
    k.step("q", "neg", "p", dtype=ct, compute=ct)
    k.step("l1", "log1p", "q", dtype=ct, compute=ct)
    k.step("c1", "maximum", "l1", -100.0, dtype=ct, compute=ct)
    k.step("l0", "log", "p", dtype=ct, compute=ct)
    k.step("c0", "maximum", "l0", -100.0, dtype=ct, compute=ct)
    k.step("tm", "sub", "t", 1.0, dtype=ct, compute=ct)
    k.step("a", "mul", "tm", "c1", dtype=ct, compute=ct)
    k.step("b", "mul", "t", "c0", dtype=ct, compute=ct)
    loss = k.step("loss", "sub", "a", "b", dtype=ct, compute=ct)
    if w is not None:
        loss = k.step("lw", "mul", "loss", "w", dtype=ct, compute=ct)
    flag = eager.empty((), D.int32)
    if reduction == "none":  # a pointwise kernel cannot also reduce: the check is a kernel of its own
        _finish_loss(k, loss, out, reduction, ct)
        n = p.size
        k = Kernel("binary_cross_entropy_check", (n,) if p.ndim == 0 else p.shape, max(p.ndim, 1))
        k.load("p", p)
    everything = tuple(range(len(k.shape)))
    k.step("ge0", "ge", "p", 0.0, dtype=D.bool_)
    k.step("le1", "le", "p", 1.0, dtype=D.bool_)
    k.step("ok", "logical_and", "ge0", "le1", dtype=D.bool_)  # (false for NaN too, as torch's check is)
    k.step("okn", "logical_not", "ok", dtype=D.bool_)
    k.cast("bad", "okn", D.int32)
    k.step("anybad", "amax", "bad", dims=everything, keepdim=False, is_max=True, dtype=D.int32)
    k.store("anybad", flag, (), ())
    if reduction == "none":
        k.launch()
    else:
        _finish_loss(k, loss, out, reduction, ct)
    if eager.to_host(flag).item():
        raise RuntimeError(_BCE_RANGE)
    return [out]


def binary_cross_entropy_with_logits(args, attrs, dtype, compute):
    """(1 - t) x + (1 + (pw - 1) t) softplus(-x), times the weight, reduced in the same kernel;
    softplus(-x) = max(-x, 0) + log1p(exp(-|x|)) never overflows."""
    x, t = (eager._device_value(a) for a in args[:2])
    w = eager._device_value(args[2]) if args[2] is not None else None
    pw = eager._device_value(args[3]) if args[3] is not None else None
    reduction = attrs.get("reduction", "mean")
    ct = _float_ct(dtype)
    k, out = _loss_kernel("binary_cross_entropy_with_logits", {"x": x, "t": t, "w": w, "pw": pw}, reduction, dtype)
    if k is None:
        return [out]
    k.step("nx", "neg", "x", dtype=ct, compute=ct)
    k.step("m0", "maximum", "nx", 0.0, dtype=ct, compute=ct)
    k.step("ax", "abs", "x", dtype=ct, compute=ct)
    k.step("nax", "neg", "ax", dtype=ct, compute=ct)
    k.step("e", "exp", "nax", dtype=ct, compute=ct)
    k.step("l", "log1p", "e", dtype=ct, compute=ct)
    sp = k.step("sp", "add", "m0", "l", dtype=ct, compute=ct)
    k.step("nt", "neg", "t", dtype=ct, compute=ct)
    k.step("omt", "add", "nt", 1.0, dtype=ct, compute=ct)
    k.step("a", "mul", "omt", "x", dtype=ct, compute=ct)
    if pw is not None:
        k.step("pwm", "sub", "pw", 1.0, dtype=ct, compute=ct)
        k.step("pt", "mul", "pwm", "t", dtype=ct, compute=ct)
        k.step("c", "add", "pt", 1.0, dtype=ct, compute=ct)
        sp = k.step("csp", "mul", "c", "sp", dtype=ct, compute=ct)
    loss = k.step("loss", "add", "a", sp, dtype=ct, compute=ct)
    if w is not None:
        loss = k.step("lw", "mul", "loss", "w", dtype=ct, compute=ct)
    _finish_loss(k, loss, out, reduction, ct)
    return [out]


# ---- batch_norm ---------------------------------------------------------------------------------
def _channel_first(d: DeviceArray, dims) -> tuple[tuple, tuple]:
    return _last(d.shape, dims), _last(d.estrides, dims)


def batch_norm(args, attrs, dtype, compute):
    """Per channel (dim 1): y = (x - mean) * invstd * w + b, with (mean, invstd) the second and third outputs.

    Training: the batch's statistics, from one row kernel over x read as (C, N, *spatial)
    (the channel dim permuted first by strides, every other dim reduced). Evaluation: the
    running statistics, a (C,) kernel for (mean, invstd) and a pointwise kernel for y.
    The running buffers' update in training is `batch_norm_update_running`."""
    x = args[0]._data
    w, b, rm, rv = (a._data if a is not None else None for a in args[1:5])
    eps = float(attrs.get("eps", 1e-5))
    dts = dtype if isinstance(dtype, tuple) else (dtype,) * 3
    ct = _float_ct(dts[0])
    if x.ndim < 2:
        raise LoweringError("batch_norm of an input with no channel dim")
    c = x.shape[1]
    y = _like(x, dts[0])
    mean, invstd = eager.empty((c,), dts[1]), eager.empty((c,), dts[2])
    other = [0] + list(range(2, x.ndim))
    chan = (c,) + (1,) * len(other)  # a per-channel (C,) array read against the (C, N, ...) kernel
    per_c = lambda d: (chan, (d.estrides[0],) + (0,) * len(other))  # noqa: E731
    if attrs.get("training", True):
        if x.size == 0:
            raise LoweringError("batch_norm over an empty batch")
        k = Kernel("batch_norm", _channel_first(x, other)[0], len(other))
        k.load("x", x, *_channel_first(x, other))
        red = tuple(range(1, x.ndim))
        _standardize(k, red, eps, ct)
        k.store("mu", mean, chan, (1,) + (0,) * len(other))
        k.store("rstd", invstd, chan, (1,) + (0,) * len(other))
        store_y = lambda v: k.store(v, y, *_channel_first(y, other))  # noqa: E731
    else:
        if rm is None or rv is None:
            raise LoweringError("batch_norm in evaluation without running statistics")
        s = Kernel("batch_norm_stats", (c,))
        s.load("rm", rm)
        s.load("rv", rv)
        s.cast("mu", "rm", ct)
        s.step("ve", "add", "rv", eps, dtype=ct, compute=ct)
        s.step("rstd", "rsqrt", "ve", dtype=ct, compute=ct)
        s.store("mu", mean)
        s.store("rstd", invstd)
        s.launch()
        if x.size == 0:
            return [y, mean, invstd]
        k = Kernel("batch_norm_eval", _channel_first(x, other)[0])
        k.load("x", x, *_channel_first(x, other))
        k.load("mu", rm, *per_c(rm))
        k.load("rv", rv, *per_c(rv))
        k.step("xc", "sub", "x", "mu", dtype=ct, compute=ct)
        k.step("ve", "add", "rv", eps, dtype=ct, compute=ct)
        k.step("rstd", "rsqrt", "ve", dtype=ct, compute=ct)
        store_y = lambda v: k.store(v, y, *_channel_first(y, other))  # noqa: E731
    v = k.step("xh", "mul", "xc", "rstd", dtype=ct, compute=ct)
    if w is not None:
        k.load("w", w, *per_c(w))
        v = k.step("xw", "mul", v, "w", dtype=ct, compute=ct)
    if b is not None:
        k.load("b", b, *per_c(b))
        v = k.step("xb", "add", v, "b", dtype=ct, compute=ct)
    store_y(v)
    k.launch()
    return [y, mean, invstd]


def batch_norm_update_running(rm: DeviceArray | None, rv: DeviceArray | None, mean: DeviceArray,
                              invstd: DeviceArray, eps: float, momentum: float, n: int) -> None:
    """running = (1 - momentum) * running + momentum * batch statistic, in place, in one (C,) kernel.

    The batch variance is recovered from invstd (1 / invstd^2 - eps) and made unbiased
    (times n / (n - 1)), as torch's running_var is."""
    ct = compute_dtype(mean.tdtype)
    k = Kernel("batch_norm_update_running", mean.shape)
    if rm is not None:
        k.load("rm", rm)
        k.load("mu", mean)
        k.step("a", "mul", "rm", 1.0 - momentum, dtype=ct, compute=ct)
        k.step("bm", "mul", "mu", momentum, dtype=ct, compute=ct)
        k.step("new_m", "add", "a", "bm", dtype=ct, compute=ct)
        k.store("new_m", rm)
    if rv is not None:
        k.load("rv", rv)
        k.load("s", invstd)
        k.step("s2", "mul", "s", "s", dtype=ct, compute=ct)
        k.step("v0", "reciprocal", "s2", dtype=ct, compute=ct)
        k.step("v1", "sub", "v0", eps, dtype=ct, compute=ct)
        k.step("vu", "mul", "v1", n / (n - 1), dtype=ct, compute=ct)
        k.step("c", "mul", "rv", 1.0 - momentum, dtype=ct, compute=ct)
        k.step("vm", "mul", "vu", momentum, dtype=ct, compute=ct)
        k.step("new_v", "add", "c", "vm", dtype=ct, compute=ct)
        k.store("new_v", rv)
    if k.stores and mean.size:
        k.launch()


HANDLERS: dict[str, Callable] = {
    "softmax": softmax, "log_softmax": log_softmax, "softmax_backward": softmax_backward,
    "log_softmax_backward": log_softmax_backward, "cross_entropy": cross_entropy,
    "cross_entropy_backward": cross_entropy_backward, "nll_loss": nll_loss, "nll_loss_backward": nll_loss_backward,
    "mse_loss": mse_loss, "layer_norm": layer_norm, "cat": cat, "stack": stack, "logsumexp": logsumexp, "var": var,
    "max_dim": max_dim, "argmax": argmax, "nansum": nansum, "norm": norm, "any": _any_all("any", True),
    "all": _any_all("all", False), "smooth_l1_loss": smooth_l1_loss, "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits, "batch_norm": batch_norm,
}
