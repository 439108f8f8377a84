"""Neural-network primitives: the ops behind `tracegrad.nn.functional`.

torch gives these ops their own backward nodes (`AddmmBackward0`,
`SoftmaxBackward0`, `NllLossBackward0`, `ConvolutionBackward0`, ...), so each
is a primitive here with:
  - a fused NumPy implementation (one pass where NumPy allows; numerically
    stable: softmax and log-softmax subtract the row max, BCE-with-logits uses
    softplus, so no `exp` ever overflows);
  - a vjp written with tracegrad ops, so gradients of gradients work and a
    tracer records the backward graph. Where the backward is itself a big
    operation (nll_loss, conv2d, pooling, embedding) it is its own primitive
    whose vjp is again written in ops: the adjoint of a linear map is the map
    it came from (the backward of nll_loss is a scatter; the scatter's adjoint
    is the gather nll_loss does).

Composites that a fusing compiler would rather see as primitives (softmax,
log_softmax, mse_loss, gelu, silu, layer_norm, ...) also have a decomposition
into plain pointwise ops and reductions in `DECOMPOSITIONS`; the functional
layer uses it while a tracer is active, and tests check it agrees with torch.

Shapes, dtypes and error messages are checked by `tracegrad.nn.functional`
before these run, so the primitives assume valid input."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import dtypes as D
from ..autograd import grad_mode
from ..dispatch import TRACER, apply
from ..tensor import Tensor as _Tensor
from . import pointwise as P
from . import reduce as R
from . import linalg as L
from .shape_util import sum_to
from .special import erf_np
from .table import Op, defop

_SQRT1_2 = 1 / math.sqrt(2.0)
_INV_SQRT_2PI = 1 / math.sqrt(2.0 * math.pi)


def _first_dtype(args, attrs=None):
    return args[0].dtype


def _wide(x: np.ndarray) -> np.ndarray:
    """float16 math runs in float32 (as torch's CPU kernels accumulate); the dispatcher narrows back."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _from_np(arr, dtype):
    from ..creation import from_values

    return from_values(arr, dtype)


def _reduce_np(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(dtype=loss.dtype))
    return np.asarray(loss.mean(dtype=loss.dtype))


def _reduce_grad(g, reduction: str, n: int):
    """The upstream gradient of a reduced loss, spread over its n elements."""
    if reduction == "mean":
        return g / n if n else g * float("nan")
    return g


# ================================================================================================
# addmm: bias + mat1 @ mat2 (what Linear runs on 2-D input). The op table's linalg module owns
# the primitive when it has one; this definition is only the fallback.
# ================================================================================================
def _np_addmm(bias, m1, m2, beta=1, alpha=1):
    if m1.dtype.kind in "iu":  # integer addmm: torch truncates the scalars to the dtype
        beta, alpha = int(beta), int(alpha)
    elif m1.dtype == np.float16:  # float16 accumulates in float32 and rounds once, as in torch
        bias, m1, m2 = bias.astype(np.float32), m1.astype(np.float32), m2.astype(np.float32)
    r = np.matmul(m1, m2)
    if alpha != 1:
        r *= alpha
    r += bias if beta == 1 else bias * beta
    return r


def _vjp_addmm(ctx, saved, g):
    m1, m2 = saved
    alpha, beta = ctx.alpha, ctx.beta
    gb = g1 = g2 = None
    if ctx.needs[0]:
        gs = g if beta == 1 else g * beta
        # a bias row (n,) takes the column sums: one reduction, no keepdim-then-reshape
        gb = gs.sum(0) if len(ctx.shapes[0]) == 1 and g.ndim == 2 else sum_to(gs, ctx.shapes[0])
    if ctx.needs[1]:
        g1 = L.mm(g, m2.t())
        g1 = g1 if alpha == 1 else g1 * alpha
    if ctx.needs[2]:
        g2 = L.mm(m1.t(), g)
        g2 = g2 if alpha == 1 else g2 * alpha
    return gb, g1, g2


ADDMM = getattr(L, "ADDMM", None) or defop(
    "addmm", "linalg", _np_addmm, dtype=lambda args, attrs: args[1].dtype, cast_inputs=True, vjp=_vjp_addmm,
    save=(1, 2), grad_name="AddmmBackward0")


def addmm(bias, mat1, mat2, beta=1, alpha=1):
    """beta * bias + alpha * (mat1 @ mat2), one node (AddmmBackward0); shapes already checked."""
    return apply(ADDMM, (bias, mat1, mat2), {"beta": beta, "alpha": alpha})


# ================================================================================================
# linear: x @ W.T + b for 2-D x, the weight used as stored (torch runs addmm(b, x, W.t()) and so
# shows a TBackward0 node before the weight's AccumulateGrad; here the transpose is part of the
# op, which saves a view and its backward node per layer and step). The node is AddmmBackward0.
# ================================================================================================
def _np_linear(x, w, b):
    r = np.matmul(x, w.T)
    r += b
    return r


def _np_linear_backward(g, x, w, needs=(True, True, True)):
    none = np.empty(0, dtype=g.dtype)
    return (np.matmul(g, w) if needs[0] else none,
            np.matmul(g.T, x) if needs[1] else none,
            g.sum(axis=0) if needs[2] else none)


def _plain_float(*ts) -> bool:
    """Tensors of one float32 or float64 dtype, with no tracer: a backward rule may run NumPy on
    their arrays and wrap the results itself, with what apply would have done (no casts, no
    bfloat16 widening, no layout to match for these outputs) and none of its per-call work."""
    dt = ts[0].dtype
    if TRACER[0] is not None or (dt is not D.float32 and dt is not D.float64):
        return False
    for t in ts:
        if t.dtype is not dt or type(t._data) is not np.ndarray:  # (a CUDA tensor's data is not NumPy's)
            return False
    return True


def _vjp_linear(ctx, saved, g):
    x, w = saved
    if not _recording() and _plain_float(g, x, w):
        gd, n, dt, make = g._data, ctx.needs, g.dtype, _Tensor._make
        return (make(np.matmul(gd, w._data), dt) if n[0] else None,
                make(np.matmul(gd.T, x._data), dt) if n[1] else None,
                make(gd.sum(axis=0), dt) if n[2] else None)
    if not _recording():
        gx, gw, gb = apply(LINEAR_BACKWARD, (g, x, w), {"needs": ctx.needs}, dtype=(g.dtype,) * 3, compute=g.dtype)
        n = ctx.needs
        return (gx if n[0] else None, gw if n[1] else None, gb if n[2] else None)
    return (L.mm(g, w) if ctx.needs[0] else None, L.mm(g.t(), x) if ctx.needs[1] else None,
            g.sum(0) if ctx.needs[2] else None)


LINEAR = defop("linear", "linalg", _np_linear, dtype=_first_dtype, cast_inputs=True, vjp=_vjp_linear, save=(0, 1),
               grad_name="AddmmBackward0", edges=(2, 0, 1))  # next_functions in addmm's order: bias, x, weight
LINEAR_BACKWARD = defop("linear_backward", "linalg", _np_linear_backward, dtype=lambda a, k: (a[0].dtype,) * 3,
                        nout=3)


def linear(x, w, b):
    """x (N, in) @ w (out, in).T + b (out,): one op and one node (AddmmBackward0)."""
    return apply(LINEAR, (x, w, b))


# ================================================================================================
# softmax / log_softmax
# ================================================================================================
# NumPy reduces a short innermost axis slowly: the max over the 4 logits of 923 rows takes
# ~30 us, where 3 elementwise maxima of whole columns take ~3 us, and a matrix-vector product
# with ones sums the rows in ~2 us against ~13 us. Class scores (softmax, losses) are usually
# such short rows.
_ONES: dict = {}


def _short_last(w: np.ndarray, dim: int) -> bool:
    """Is `dim` the last axis of w, and short enough for the column-wise forms below to win?"""
    if w.ndim < 2 or dim not in (-1, w.ndim - 1):
        return False
    c = w.shape[-1]
    return 2 <= c and (c <= 4 or (c <= 16 and w.size >= 12 * c * c))


def _max_last(w: np.ndarray) -> np.ndarray:
    """w.max(-1, keepdims=True) for a short last axis (NaN propagates as in max)."""
    m = np.maximum(w[..., 0], w[..., 1])
    for i in range(2, w.shape[-1]):
        np.maximum(m, w[..., i], out=m)
    return m[..., None]


def _sum_last(w: np.ndarray) -> np.ndarray:
    """w.sum(-1, keepdims=True) for a short last axis of a float array."""
    c = w.shape[-1]
    ones = _ONES.get((c, w.dtype))
    if ones is None:
        ones = _ONES[(c, w.dtype)] = np.ones(c, w.dtype)
    return np.matmul(w, ones)[..., None]


def _amax_keep(w: np.ndarray, dim: int) -> np.ndarray:
    return _max_last(w) if _short_last(w, dim) else w.max(axis=dim, keepdims=True)


def _sum_keep(w: np.ndarray, dim: int) -> np.ndarray:
    # BLAS sums float32 and float64 only (NumPy's float16 matmul is a slow loop)
    if _short_last(w, dim) and (w.dtype == np.float32 or w.dtype == np.float64):
        return _sum_last(w)
    return w.sum(axis=dim, keepdims=True)


def _np_softmax(x, dim):
    w = _wide(x)
    if not w.size:
        return w.copy()
    e = w - _amax_keep(w, dim)  # (one new array, exponentiated and scaled in place: fresh pages are slow)
    np.exp(e, out=e)
    e /= _sum_keep(e, dim)
    return e


def _np_log_softmax(x, dim):
    w = _wide(x)
    if not w.size:
        return w.copy()
    s = w - _amax_keep(w, dim)
    s -= np.log(_sum_keep(np.exp(s), dim))
    return s


def _recording() -> bool:
    """True while a backward pass builds a graph of its own (create_graph=True), or in forward code.

    A vjp then has to be written in tracegrad ops so the gradient is differentiable again;
    otherwise (a plain backward) it may run one fused NumPy primitive instead."""
    return grad_mode._state["enabled"]


def _np_softmax_backward(g, y, dim=1):
    # torch's formula: y * (g - sum(g * y))
    s = _sum_keep(g * y, dim)
    out = g - s
    out *= y
    return out


def _np_log_softmax_backward(g, y, dim=1):
    # torch's formula: g - exp(y) * sum(g)
    e = np.exp(y)
    e *= _sum_keep(g, dim)
    return g - e


def _vjp_softmax(ctx, saved, g):
    (y,) = saved
    if not _recording():
        return (apply(SOFTMAX_BACKWARD, (g, y), {"dim": ctx.dim}),)
    gy = g * y
    return (gy - y * gy.sum(ctx.dim, keepdim=True),)


def _vjp_log_softmax(ctx, saved, g):
    (y,) = saved
    if not _recording():
        return (apply(LOG_SOFTMAX_BACKWARD, (g, y), {"dim": ctx.dim}),)
    return (g - P.exp(y) * g.sum(ctx.dim, keepdim=True),)


SOFTMAX_BACKWARD = defop("softmax_backward", "reduce", _np_softmax_backward, dtype=_first_dtype, cast_inputs=True)
LOG_SOFTMAX_BACKWARD = defop("log_softmax_backward", "reduce", _np_log_softmax_backward, dtype=_first_dtype,
                             cast_inputs=True)


SOFTMAX = defop("softmax", "reduce", _np_softmax, dtype=_first_dtype, vjp=_vjp_softmax, save=("out",),
                grad_name="SoftmaxBackward0")
LOG_SOFTMAX = defop("log_softmax", "reduce", _np_log_softmax, dtype=_first_dtype, vjp=_vjp_log_softmax,
                    save=("out",), grad_name="LogSoftmaxBackward0")


def softmax(x, dim: int):
    return apply(SOFTMAX, (x,), {"dim": dim})


def log_softmax(x, dim: int):
    return apply(LOG_SOFTMAX, (x,), {"dim": dim})


def _shifted(x, dim: int):
    """x minus its max along dim (for exp's range); an empty x as is: amax would raise over a size-0
    dim, where softmax of an empty tensor is an empty tensor."""
    if x.numel() == 0:
        return x
    return x - R.amax(x, dim, keepdim=True).detach()


def softmax_decomposed(x, dim: int):
    e = P.exp(_shifted(x, dim))
    return e / e.sum(dim, keepdim=True)


def log_softmax_decomposed(x, dim: int):
    s = _shifted(x, dim)
    return s - P.log(P.exp(s).sum(dim, keepdim=True))


# ================================================================================================
# nll_loss: the loss behind cross_entropy
# ================================================================================================
def _nll_rows(x, t):
    """(rows of scores with the class dim last, flat targets) for (N, C, d...) or (C,) input."""
    if x.ndim == 1:
        return x.reshape(1, -1), t.reshape(1)
    c = x.shape[1]
    rows = np.moveaxis(x, 1, -1).reshape(-1, c) if x.ndim > 2 else x
    return rows, t.reshape(-1)


def _nll_weights(t, w, ignore_index, c, dtype):
    """Per-row weight w[t] (0 where the target is ignore_index), checking target bounds.

    Returns (safe targets, weights or None when every weight is 1)."""
    if t.size:
        if (ignore_index < 0 or ignore_index >= c) and t.dtype == np.int64:
            # one reduction checks both bounds: as unsigned, a negative target is larger than any c
            if t.view(np.uint64).max() < c:  # the usual case: all valid, none ignored
                return t, (None if w is None else w.astype(dtype, copy=False)[t])
        else:
            lo, hi = t.min(), t.max()
            if lo >= 0 and hi < c and not lo <= ignore_index <= hi:
                return t, (None if w is None else w.astype(dtype, copy=False)[t])
    valid = t != ignore_index
    if t.size:
        bad = valid & ((t < 0) | (t >= c))
        if bad.any():
            raise IndexError(f"Target {int(t[bad][0])} is out of bounds.")
    tc = np.where(valid, t, 0)
    wt = valid.astype(dtype) if w is None else np.where(valid, w.astype(dtype, copy=False)[tc], 0).astype(dtype)
    return tc, wt


def _np_nll_loss(x, t, w, reduction="mean", ignore_index=-100, image=False):
    x = _wide(x)
    rows, tf = _nll_rows(x, t)
    tc, wt = _nll_weights(tf, w, ignore_index, rows.shape[1], x.dtype)
    loss = -rows[np.arange(tf.size), tc]
    if wt is not None:
        loss *= wt
    if reduction == "none":
        return loss.reshape(t.shape)
    total = loss.sum(dtype=x.dtype)
    if reduction == "sum":
        return np.asarray(total)
    return np.asarray(total / (wt.sum(dtype=x.dtype) if wt is not None else x.dtype.type(tf.size)))


def _np_nll_loss_backward(g, t, w, shape=(), reduction="mean", ignore_index=-100, image=False):
    """d loss / d input: -w[t] * g at each row's target class, zero elsewhere."""
    c = shape[1] if len(shape) > 1 else shape[0]
    tf = t.reshape(-1)
    tc, wt = _nll_weights(tf, w, ignore_index, c, g.dtype)
    if wt is None:
        wt = np.ones(tf.size, g.dtype)
    if reduction == "none":
        coef = -wt * g.reshape(-1)
    else:
        coef = -wt * (g / wt.sum(dtype=g.dtype) if reduction == "mean" else g)
    rows = np.zeros((tf.size, c), dtype=g.dtype)
    rows[np.arange(tf.size), tc] = coef
    if len(shape) <= 2:
        return rows.reshape(shape)
    lead = (shape[0],) + tuple(shape[2:])
    return np.ascontiguousarray(np.moveaxis(rows.reshape(lead + (c,)), -1, 1))


def _vjp_nll_loss(ctx, saved, g):
    t, w = saved[0], (saved[1] if len(saved) > 1 else None)
    gx = apply(NLL_LOSS_BACKWARD, (g, t, w), {"shape": tuple(ctx.shapes[0]), "reduction": ctx.reduction,
                                              "ignore_index": ctx.ignore_index,
                                              "image": ctx.attrs.get("image", False)}, dtype=ctx.dtypes[0])
    return (gx,) + (None,) * (len(ctx.shapes) - 1)


def _vjp_nll_loss_backward(ctx, saved, gg):
    # the backward is linear in g; its adjoint is nll_loss itself
    t, w = saved[0], (saved[1] if len(saved) > 1 else None)
    attrs = {"reduction": ctx.reduction, "ignore_index": ctx.ignore_index, "image": ctx.attrs.get("image", False)}
    return (apply(NLL_LOSS, (gg, t, w), attrs),) + (None,) * (len(ctx.shapes) - 1)


NLL_LOSS = defop("nll_loss", "index", _np_nll_loss, dtype=_first_dtype, vjp=_vjp_nll_loss, save=(1, 2),
                 grad_name=lambda a: "NllLoss2DBackward0" if a.get("image") else "NllLossBackward0")
NLL_LOSS_BACKWARD = defop("nll_loss_backward", "index", _np_nll_loss_backward, dtype=_first_dtype,
                          vjp=_vjp_nll_loss_backward, save=(1, 2), grad_name="NllLossBackwardBackward0")


def nll_loss(logp, target, weight=None, reduction="mean", ignore_index=-100):
    """torch's nll_loss_nd: (N, C) and (C,) directly, (N, C, H, W) as the "2d" loss, and any other
    rank viewed as (N, C, 1, rest) for it (viewed back for reduction='none')."""
    attrs = {"reduction": reduction, "ignore_index": ignore_index}
    if logp.ndim <= 2:
        return apply(NLL_LOSS, (logp, target, weight), attrs)
    attrs["image"] = True
    if logp.ndim == 4:
        return apply(NLL_LOSS, (logp, target, weight), attrs)
    n, c = logp.shape[0], logp.shape[1]
    out_size = (n,) + tuple(logp.shape[2:])
    x = logp.contiguous().view(n, c, 1, -1) if logp.numel() else logp.reshape(n, c, 0, 0)
    t = target.contiguous().view(n, 1, -1) if target.numel() else target.reshape(n, 0, 0)
    out = apply(NLL_LOSS, (x, t, weight), attrs)
    return out.view(out_size) if reduction == "none" else out


# ================================================================================================
# cross_entropy of (N, C) logits and class indices without weights: log_softmax and nll_loss in
# one op. torch runs them as two (NllLossBackward0 -> LogSoftmaxBackward0), each with its own
# dispatch, node and backward kernel; for the small batches of a training loop that overhead is
# most of the loss's time. The node is named NllLossBackward0 and lists the logits' node as its
# one next function (where torch lists its LogSoftmaxBackward0).
# ================================================================================================
def _np_cross_entropy(x, t, reduction="mean", ignore_index=-100, keep=None):
    w = _wide(x)
    if _short_last(w, 1):
        s = w - _max_last(w)
        e = np.exp(s)
        se = _sum_last(e)
    else:
        s = w - w.max(axis=1, keepdims=True)
        e = np.exp(s)
        se = e.sum(axis=1, keepdims=True)
    tc, wt = _nll_weights(t, None, ignore_index, w.shape[1], w.dtype)
    loss = np.log(se[:, 0])
    loss -= s[np.arange(t.size), tc]  # -log_softmax at the target: log(sum exp s) - s[t]
    if wt is not None:
        loss *= wt
    if keep is not None:  # the backward's softmax is e / se: kept instead of recomputed from x
        keep.append((e, se, tc, wt))
    if reduction == "none":
        return loss
    total = loss.sum(dtype=w.dtype)
    if reduction == "sum":
        return np.asarray(total)
    return np.asarray(total / (wt.sum(dtype=w.dtype) if wt is not None else w.dtype.type(t.size)))


def _np_cross_entropy_backward(g, keep=(), reduction="mean"):
    """softmax(x) - one_hot(t), times the upstream gradient (spread over the rows for 'mean')."""
    e, se, tc, wt = keep[0]
    p = e / se
    p[np.arange(tc.size), tc] -= 1
    if reduction == "none":
        p *= (g if wt is None else g * wt)[:, None]
        return p
    if reduction == "mean":
        n = wt.sum(dtype=p.dtype) if wt is not None else tc.size
        if not n:  # every target ignored: no row contributes (torch's gradient is zero)
            return np.zeros_like(p)
        g = g / n
    p *= g
    if wt is not None:
        p *= wt[:, None]
    return p


def _vjp_cross_entropy(ctx, saved, g):
    if not _recording():
        if _plain_float(g) and g.dtype is ctx.dtypes[0]:
            return _Tensor._make(_np_cross_entropy_backward(g._data, ctx.keep, ctx.reduction), g.dtype), None
        return apply(CROSS_ENTROPY_BACKWARD, (g,), {"keep": ctx.keep, "reduction": ctx.reduction},
                     dtype=ctx.dtypes[0]), None
    # create_graph: the same gradient as ops on the logits, so that it is differentiable again
    (t,) = saved
    logp = log_softmax(ctx.args[0], 1)
    gl = apply(NLL_LOSS_BACKWARD, (g, t, None), {"shape": tuple(ctx.shapes[0]), "reduction": ctx.reduction,
                                                 "ignore_index": ctx.ignore_index}, dtype=ctx.dtypes[0])
    return gl - P.exp(logp) * gl.sum(1, keepdim=True), None


# Eager-only, so not in the op table: the functional layer takes this path only without a tracer
# (a tracer sees log_softmax and nll_loss, which fusion and the GPU backend know), and the
# backward reads the forward's NumPy intermediates, which a traced graph would not have.
CROSS_ENTROPY = Op("cross_entropy", "reduce", _np_cross_entropy, dtype=_first_dtype, vjp=_vjp_cross_entropy,
                   save=(1,), grad_name="NllLossBackward0", edges=(0,))
CROSS_ENTROPY_BACKWARD = Op("cross_entropy_backward", "reduce", _np_cross_entropy_backward, dtype=_first_dtype)


def cross_entropy(x, target, reduction: str = "mean", ignore_index: int = -100):
    """nll_loss(log_softmax(x, 1), target) for (N, C) float32 or float64 x (C > 0) and (N,) int64 target: one
    op and one node. Shapes and dtypes already checked."""
    return apply(CROSS_ENTROPY, (x, target), {"reduction": reduction, "ignore_index": ignore_index, "keep": []})


# ================================================================================================
# regression losses
# ================================================================================================
def _np_mse_loss(x, t, reduction="mean"):
    d = _wide(x) - t
    d *= d
    return _reduce_np(d, reduction)


def _vjp_mse_loss(ctx, saved, g):
    x, t = saved
    scale = _reduce_grad(g, ctx.reduction, math.prod(ctx.shapes[0])) * 2.0
    gx = (x - t) * scale
    return (gx if ctx.needs[0] else None), (-gx if ctx.needs[1] else None)


MSE_LOSS = defop("mse_loss", "reduce", _np_mse_loss, dtype=_first_dtype, cast_inputs=True, vjp=_vjp_mse_loss,
                 save=(0, 1), grad_name="MseLossBackward0")


def mse_loss(x, t, reduction="mean"):
    return apply(MSE_LOSS, (x, t), {"reduction": reduction})


def mse_loss_decomposed(x, t, reduction="mean"):
    d = x - t
    return _reduce_ops(d * d, reduction)


def _reduce_ops(loss, reduction):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _np_smooth_l1(x, t, reduction="mean", beta=1.0, huber=False):
    d = np.abs(_wide(x) - t)
    if huber:  # delta * (|d| - delta / 2) past delta
        loss = np.where(d < beta, 0.5 * d * d, beta * (d - 0.5 * beta))
    elif beta == 0:
        loss = d
    else:
        loss = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce_np(loss.astype(d.dtype, copy=False), reduction)


def _vjp_smooth_l1(ctx, saved, g):
    x, t = saved
    d = x - t
    beta = ctx.beta
    if ctx.huber:
        slope = P.clamp(d, -beta, beta)
    elif beta == 0:
        slope = P.sign(d)
    else:
        slope = P.clamp(d / beta, -1.0, 1.0)
    gx = slope * _reduce_grad(g, ctx.reduction, math.prod(ctx.shapes[0]))
    return (gx if ctx.needs[0] else None), (-gx if ctx.needs[1] else None)


SMOOTH_L1 = defop("smooth_l1_loss", "reduce", _np_smooth_l1, dtype=_first_dtype, cast_inputs=True,
                  vjp=_vjp_smooth_l1, save=(0, 1),
                  grad_name=lambda a: "HuberLossBackward0" if a.get("huber") else "SmoothL1LossBackward0")


def smooth_l1_loss(x, t, reduction="mean", beta=1.0):
    return apply(SMOOTH_L1, (x, t), {"reduction": reduction, "beta": float(beta), "huber": False})


def huber_loss(x, t, reduction="mean", delta=1.0):
    return apply(SMOOTH_L1, (x, t), {"reduction": reduction, "beta": float(delta), "huber": True})


# ================================================================================================
# binary cross entropy (on probabilities, and on logits)
# ================================================================================================
def _np_bce(p, t, w, reduction="mean"):
    p = _wide(p)
    if p.size and not ((p >= 0) & (p <= 1)).all():
        raise RuntimeError("all elements of input should be between 0 and 1")
    # torch clamps each log at -100 so that p = 0 or 1 gives a finite loss
    loss = (t - 1) * np.maximum(np.log1p(-p), -100) - t * np.maximum(np.log(p), -100)
    if w is not None:
        loss = loss * w
    return _reduce_np(loss.astype(p.dtype, copy=False), reduction)


def _vjp_bce(ctx, saved, g):
    p, t = saved[0], saved[1]
    w = saved[2] if len(saved) > 2 else None
    gr = _reduce_grad(g, ctx.reduction, math.prod(ctx.shapes[0]))
    if w is not None:
        gr = gr * w
    gp = gt = None
    if ctx.needs[0]:
        gp = gr * (p - t) / P.clamp((1 - p) * p, min=1e-12)
    if ctx.needs[1]:
        gt = gr * (P.clamp(P.log1p(-p), min=-100) - P.clamp(P.log(p), min=-100))
    return (gp, gt) + (None,) * (len(ctx.shapes) - 2)


BCE = defop("binary_cross_entropy", "reduce", _np_bce, dtype=_first_dtype, vjp=_vjp_bce, save=(0, 1, 2),
            grad_name="BinaryCrossEntropyBackward0")


def binary_cross_entropy(p, t, weight=None, reduction="mean"):
    return apply(BCE, (p, t, weight), {"reduction": reduction})


def _softplus_neg(x):
    """log(1 + exp(-x)) without overflow: max(-x, 0) + log1p(exp(-|x|))."""
    return np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


def _np_bce_logits(x, t, w, pw, reduction="mean"):
    x = _wide(x)
    sp = _softplus_neg(x)
    if pw is None:
        loss = (1 - t) * x + sp
    else:
        loss = (1 - t) * x + ((pw - 1) * t + 1) * sp
    if w is not None:
        loss = loss * w
    return _reduce_np(loss.astype(x.dtype, copy=False), reduction)


def _vjp_bce_logits(ctx, saved, g):
    x, t = saved[0], saved[1]
    rest = list(saved[2:])
    w = rest.pop(0) if ctx.has_weight else None
    pw = rest.pop(0) if ctx.has_pos_weight else None
    gr = _reduce_grad(g, ctx.reduction, math.prod(ctx.shapes[0]))
    if w is not None:
        gr = gr * w
    s = P.sigmoid(x)
    gx = gt = None
    if ctx.needs[0]:
        gx = gr * (s - t) if pw is None else gr * (s * (pw * t + 1 - t) - pw * t)
        gx = sum_to(gx, ctx.shapes[0])
    if ctx.needs[1]:
        # d/dt [(1 - t) x + ((pw - 1) t + 1) softplus(-x)] = -x + (pw - 1) softplus(-x)
        gt = -x if pw is None else -x + (pw - 1) * (P.log1p(P.exp(-P.abs(x))) + P.clamp(-x, min=0))
        gt = sum_to(gr * gt, ctx.shapes[1])
    return (gx, gt) + (None,) * (len(ctx.shapes) - 2)


BCE_LOGITS = defop("binary_cross_entropy_with_logits", "reduce", _np_bce_logits, dtype=_first_dtype,
                   vjp=_vjp_bce_logits, save=(0, 1, 2, 3), grad_name="BinaryCrossEntropyWithLogitsBackward0")


def binary_cross_entropy_with_logits(x, t, weight=None, pos_weight=None, reduction="mean"):
    return apply(BCE_LOGITS, (x, t, weight, pos_weight),
                 {"reduction": reduction, "has_weight": weight is not None, "has_pos_weight": pos_weight is not None})


# ================================================================================================
# activations
# ================================================================================================
_GELU_K = math.sqrt(2.0 / math.pi)


def _np_gelu(x, approximate="none"):
    w = _wide(x)
    if approximate == "tanh":
        return 0.5 * w * (1 + np.tanh(_GELU_K * (w + 0.044715 * w * w * w)))
    return 0.5 * w * (1 + erf_np(w * w.dtype.type(_SQRT1_2)))


def _vjp_gelu(ctx, saved, g):
    (x,) = saved
    if ctx.approximate == "tanh":
        x2 = x * x
        th = P.tanh(_GELU_K * (x + 0.044715 * x2 * x))
        d = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * (_GELU_K * (1 + 3 * 0.044715 * x2))
    else:
        d = 0.5 * (1 + P.erf(x * _SQRT1_2)) + x * P.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return (g * d,)


def _gelu_lowering(attrs):
    if attrs.get("approximate", "none") == "tanh":
        return ("{k:0.5} * {0} * (1.0 + libdevice.tanh({k:0.7978845608028654} * "
                "({0} + {k:0.044715} * {0} * {0} * {0})))")
    return "{k:0.5} * {0} * (1.0 + libdevice.erf({0} * {k:0.7071067811865476}))"


GELU = defop("gelu", "pointwise", _np_gelu, dtype=_first_dtype, vjp=_vjp_gelu, save=(0,), grad_name="GeluBackward0",
             lowering=_gelu_lowering)


def gelu(x, approximate="none"):
    return apply(GELU, (x,), {"approximate": approximate})


def gelu_decomposed(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + P.tanh(_GELU_K * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1 + P.erf(x * _SQRT1_2))


def _np_silu(x):
    w = _wide(x)
    return w / (1 + np.exp(-w))


def _vjp_silu(ctx, saved, g):
    (x,) = saved
    s = P.sigmoid(x)
    return (g * s * (1 + x * (1 - s)),)


SILU = defop("silu", "pointwise", _np_silu, dtype=_first_dtype, vjp=_vjp_silu, save=(0,), grad_name="SiluBackward0",
             lowering="{0} / (1.0 + tl.exp(-{0}))")


def silu(x):
    return apply(SILU, (x,))


def _np_leaky_relu(x, negative_slope=0.01):
    xs = x * x.dtype.type(negative_slope)
    if 0 <= negative_slope <= 1:  # then max(x, slope * x) picks the right branch (and keeps NaN)
        return np.maximum(x, xs, out=xs)
    return np.where(x > 0, x, xs)


def _np_leaky_relu_backward(g, x, negative_slope=0.01):
    # torch: x > 0 ? g : g * slope
    out = g * g.dtype.type(negative_slope)
    pos = x > 0
    out[pos] = g[pos]
    return out


def _vjp_leaky_relu(ctx, saved, g):
    (x,) = saved
    if not _recording():
        return (apply(LEAKY_RELU_BACKWARD, (g, x), {"negative_slope": ctx.negative_slope}),)
    return (P.where(x > 0, g, g * ctx.negative_slope),)


LEAKY_RELU_BACKWARD = defop("leaky_relu_backward", "pointwise", _np_leaky_relu_backward, dtype=_first_dtype,
                            cast_inputs=True, lowering="tl.where({1} > 0, {0}, {0} * {negative_slope})")


LEAKY_RELU = defop("leaky_relu", "pointwise", _np_leaky_relu, dtype=_first_dtype, vjp=_vjp_leaky_relu, save=(0,),
                   grad_name="LeakyReluBackward0", lowering="tl.where({0} > 0, {0}, {0} * {negative_slope})")


def leaky_relu(x, negative_slope=0.01):
    return apply(LEAKY_RELU, (x,), {"negative_slope": negative_slope})


def _np_elu(x, alpha=1.0):
    w = _wide(x)
    return np.where(w > 0, w, alpha * np.expm1(np.minimum(w, 0)))


def _vjp_elu(ctx, saved, g):
    (x,) = saved
    return (P.where(x > 0, g, g * ctx.alpha * P.exp(P.clamp(x, max=0))),)


ELU = defop("elu", "pointwise", _np_elu, dtype=_first_dtype, vjp=_vjp_elu, save=(0,), grad_name="EluBackward0",
            lowering="tl.where({0} > 0, {0}, {alpha} * libdevice.expm1(tl.minimum({0}, 0.0)))")


def elu(x, alpha=1.0):
    return apply(ELU, (x,), {"alpha": alpha})


def _np_softplus(x, beta=1.0, threshold=20.0):
    w = _wide(x)
    bx = w * beta
    # past the threshold softplus is the identity (torch's rule, which also avoids overflow)
    return np.where(bx > threshold, w, (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / beta)


def _vjp_softplus(ctx, saved, g):
    (x,) = saved
    bx = x * ctx.beta
    return (P.where(bx > ctx.threshold, g, g * P.sigmoid(bx)),)


SOFTPLUS = defop("softplus", "pointwise", _np_softplus, dtype=_first_dtype, vjp=_vjp_softplus, save=(0,),
                 grad_name="SoftplusBackward0",
                 lowering="tl.where({0} * {beta} > {threshold}, {0}, (tl.maximum({0} * {beta}, 0.0) + "
                          "libdevice.log1p(tl.exp(-tl.abs({0} * {beta})))) / {beta})")


def softplus(x, beta=1.0, threshold=20.0):
    return apply(SOFTPLUS, (x,), {"beta": beta, "threshold": threshold})


def _np_hardtanh(x, lo=-1.0, hi=1.0):
    return np.clip(x, x.dtype.type(lo), x.dtype.type(hi))


def _vjp_hardtanh(ctx, saved, g):
    (x,) = saved
    inside = P.logical_and(x > ctx.lo, x < ctx.hi)
    return (P.where(inside, g, g * 0.0),)


HARDTANH = defop("hardtanh", "pointwise", _np_hardtanh, dtype=_first_dtype, vjp=_vjp_hardtanh, save=(0,),
                 grad_name="HardtanhBackward0", lowering="tl.minimum(tl.maximum({0}, {lo}, propagate_nan="
                 "tl.PropagateNan.ALL), {hi}, propagate_nan=tl.PropagateNan.ALL)")


def hardtanh(x, lo=-1.0, hi=1.0):
    return apply(HARDTANH, (x,), {"lo": lo, "hi": hi})


# ================================================================================================
# layer norm and batch norm
# ================================================================================================
def _np_layer_norm(x, w, b, ndims=1, eps=1e-5):
    xw = _wide(x)
    axes = tuple(range(x.ndim - ndims, x.ndim))
    mean = xw.mean(axis=axes, keepdims=True)
    xc = xw - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    y = xc * rstd
    if w is not None:
        y *= w
    if b is not None:
        y += b
    return y, mean, rstd


def _vjp_layer_norm(ctx, saved, g, *_):
    x, w, b, mean, rstd = _unpack_norm(ctx, saved)
    lead = len(ctx.shapes[0]) - ctx.ndims
    axes = tuple(range(lead, len(ctx.shapes[0])))
    batch = tuple(range(lead))
    if grad_mode.is_grad_enabled():
        # building a graph of the gradient (create_graph): the saved statistics are outputs of this
        # node, so recompute them from x for the second derivative to see how they depend on x
        mean = x.mean(axes, keepdim=True)
        xc = x - mean
        rstd = P.rsqrt((xc * xc).mean(axes, keepdim=True) + ctx.eps)
    xhat = (x - mean) * rstd
    gx = gw = gb = None
    if ctx.needs[0]:
        gxh = g * w if w is not None else g
        gx = rstd * (gxh - gxh.mean(axes, keepdim=True) - xhat * (gxh * xhat).mean(axes, keepdim=True))
    if w is not None and ctx.needs[1]:
        gw = (g * xhat).sum(batch) if batch else g * xhat
    if b is not None and ctx.needs[1 + (w is not None)]:
        gb = g.sum(batch) if batch else g
    out = [gx]
    if w is not None:
        out.append(gw)
    if b is not None:
        out.append(gb)
    return tuple(out)


def _unpack_norm(ctx, saved):
    """saved = (x, [w], [b], mean, rstd) with the optional ones left out when None."""
    saved = list(saved)
    x = saved.pop(0)
    w = saved.pop(0) if ctx.has_w else None
    b = saved.pop(0) if ctx.has_b else None
    return x, w, b, saved[0], saved[1]


LAYER_NORM = defop("layer_norm", "reduce", _np_layer_norm, dtype=lambda a, k: (a[0].dtype,) * 3,
                   vjp=_vjp_layer_norm, save=(0, 1, 2, "out1", "out2"), nout=3,
                   grad_name="NativeLayerNormBackward0")


def layer_norm(x, weight, bias, ndims: int, eps: float):
    return apply(LAYER_NORM, (x, weight, bias),
                 {"ndims": ndims, "eps": eps, "has_w": weight is not None, "has_b": bias is not None})[0]


def layer_norm_decomposed(x, weight, bias, ndims: int, eps: float):
    axes = tuple(range(x.ndim - ndims, x.ndim))
    mean = x.mean(axes, keepdim=True)
    xc = x - mean
    y = xc * P.rsqrt((xc * xc).mean(axes, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _bn_shape(ndim):
    return (1, -1) + (1,) * (ndim - 2)


def _np_batch_norm(x, w, b, rm, rv, training=True, eps=1e-5):
    xw = _wide(x)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = _bn_shape(x.ndim)
    if training:
        mean = xw.mean(axis=axes)
        xc = xw - mean.reshape(shape)
        var = (xc * xc).mean(axis=axes)
    else:
        mean, var = rm.astype(xw.dtype, copy=False), rv.astype(xw.dtype, copy=False)
        xc = xw - mean.reshape(shape)
    invstd = 1 / np.sqrt(var + eps)
    y = xc * invstd.reshape(shape)
    if w is not None:
        y *= w.reshape(shape)
    if b is not None:
        y += b.reshape(shape)
    # torch's native_batch_norm returns (out, save_mean, save_invstd)
    return y, mean, invstd


def _vjp_batch_norm(ctx, saved, g, *_):
    x, w, b, mean, invstd = _unpack_norm(ctx, saved)
    nd = len(ctx.shapes[0])
    shape = _bn_shape(nd)
    axes = (0,) + tuple(range(2, nd))
    if grad_mode.is_grad_enabled() and ctx.training:  # create_graph: see _vjp_layer_norm
        mean = x.mean(axes)
        xc = x - mean.reshape(shape)
        invstd = P.rsqrt((xc * xc).mean(axes) + ctx.eps)
    m, s = mean.reshape(shape), invstd.reshape(shape)
    xhat = (x - m) * s
    gx = gw = gb = None
    if ctx.needs[0]:
        scale = s * w.reshape(shape) if w is not None else s
        if ctx.training:
            gx = scale * (g - g.mean(axes, keepdim=True) - xhat * (g * xhat).mean(axes, keepdim=True))
        else:
            gx = g * scale
    if w is not None and ctx.needs[1]:
        gw = (g * xhat).sum(axes)
    if b is not None and ctx.needs[1 + (w is not None)]:
        gb = g.sum(axes)
    out = [gx]
    if w is not None:
        out.append(gw)
    if b is not None:
        out.append(gb)
    return tuple(out) + (None,) * (len(ctx.shapes) - len(out))


BATCH_NORM = defop("batch_norm", "reduce", _np_batch_norm, dtype=lambda a, k: (a[0].dtype,) * 3,
                   vjp=_vjp_batch_norm, save=(0, 1, 2, "out1", "out2"), nout=3,
                   grad_name="NativeBatchNormBackward0")


def batch_norm(x, weight, bias, running_mean, running_var, training: bool, eps: float):
    """Returns (out, mean, invstd); mean/invstd are the batch's in training, the running ones otherwise."""
    return apply(BATCH_NORM, (x, weight, bias, running_mean, running_var),
                 {"training": training, "eps": eps, "has_w": weight is not None, "has_b": bias is not None})


# ================================================================================================
# embedding
# ================================================================================================
def _np_embedding(w, idx, padding_idx=None, scale_grad_by_freq=False):
    return w[idx]


def _freq_scale(flat, num_weights, dtype):
    """scale_grad_by_freq: each occurrence's gradient times 1 / (how often its index occurs in the batch)."""
    counts = np.bincount(flat, minlength=num_weights)
    return (1.0 / counts[flat]).astype(dtype)


def _np_embedding_backward(g, idx, num_weights=0, padding_idx=None, scale_grad_by_freq=False):
    dim = g.shape[-1]
    flat = idx.reshape(-1)
    gw = np.zeros((num_weights, dim), dtype=g.dtype)
    rows = g.reshape(-1, dim)
    if scale_grad_by_freq:  # (torch scales each occurrence, then sums)
        rows = rows * _freq_scale(flat, num_weights, g.dtype)[:, None]
    np.add.at(gw, flat, rows)
    if padding_idx is not None:
        gw[padding_idx] = 0
    return gw


def _vjp_embedding(ctx, saved, g):
    (idx,) = saved
    attrs = {"num_weights": ctx.shapes[0][0], "padding_idx": ctx.padding_idx}
    if getattr(ctx, "scale_grad_by_freq", False):  # (an attribute only when set: graphs and kernels stay as they were)
        attrs["scale_grad_by_freq"] = True
    gw = apply(EMBEDDING_BACKWARD, (g, idx), attrs)
    return gw, None


def _vjp_embedding_backward(ctx, saved, gg):
    (idx,) = saved
    if ctx.padding_idx is not None:
        keep = _from_np((np.arange(ctx.num_weights) != ctx.padding_idx)[:, None], D.bool_)
        gg = P.where(keep, gg, gg * 0.0)
    out = embedding(gg, idx, None)
    if getattr(ctx, "scale_grad_by_freq", False):
        flat = np.asarray(idx._values()).reshape(-1)
        scale = _freq_scale(flat, ctx.num_weights, np.float64).reshape(tuple(idx.shape) + (1,))
        out = out * _from_np(scale, out.dtype)
    return out, None


EMBEDDING = defop("embedding", "index", _np_embedding, dtype=_first_dtype, vjp=_vjp_embedding, save=(1,),
                  grad_name="EmbeddingBackward0")
EMBEDDING_BACKWARD = defop("embedding_backward", "index", _np_embedding_backward, dtype=_first_dtype,
                           vjp=_vjp_embedding_backward, save=(1,), grad_name="EmbeddingBackwardBackward0")


def embedding(weight, idx, padding_idx=None, scale_grad_by_freq=False):
    attrs = {"padding_idx": padding_idx}
    if scale_grad_by_freq:
        attrs["scale_grad_by_freq"] = True
    return apply(EMBEDDING, (weight, idx), attrs)


# ================================================================================================
# conv2d: im2col (a strided view, one copy) and one matmul
# ================================================================================================
def _pad2d(x, ph, pw, value=0.0):
    if not ph and not pw:
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _windows(xp, kh, kw, ho, wo, stride, dilation):
    """View (N, C, kh, kw, Ho, Wo) of every window of the padded input; no copy."""
    sn, sc, sh, sw = xp.strides
    (st_h, st_w), (dh, dw) = stride, dilation
    return as_strided(xp, (xp.shape[0], xp.shape[1], kh, kw, ho, wo),
                      (sn, sc, sh * dh, sw * dw, sh * st_h, sw * st_w), writeable=False)


def _out_size(n, k, s, p, d, ceil=False):
    span = n + 2 * p - d * (k - 1) - 1
    if ceil:
        o = -(-span // s) + 1
        if (o - 1) * s >= n + p:  # the last window must start inside the input or left padding
            o -= 1
        return o
    return span // s + 1


def _im2col(x, kh, kw, stride, padding, dilation):
    """(N, C*kh*kw, Ho*Wo) columns, plus (Ho, Wo)."""
    n, c, h, w = x.shape
    ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w, kw, stride[1], padding[1], dilation[1])
    win = _windows(_pad2d(x, *padding), kh, kw, ho, wo, stride, dilation)
    return win.reshape(n, c * kh * kw, ho * wo), ho, wo


def _col2im(cols, shape, kh, kw, ho, wo, stride, padding, dilation):
    """Adjoint of _im2col: add each column entry back where it was read from."""
    n, c, h, w = shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += cols[:, :, i, j]
    return xp[:, :, ph:ph + h, pw:pw + w] if (ph or pw) else xp


# Two layouts. With few input channels (the first layer of a CNN) the NCHW columns above
# copy long contiguous rows of pixels. With more channels, channels-last (NHWC) columns copy
# rows of kw * C contiguous values, which is much faster, and one matmul covers the batch.
_NHWC_MIN_CHANNELS = 8


def _use_nhwc(c, groups):
    return groups == 1 and c >= _NHWC_MIN_CHANNELS


def _nhwc_padded(x, ph, pw):
    n, c, h, w = x.shape
    xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    xp[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)
    return xp


def _nhwc_cols(x, kh, kw, stride, padding, dilation):
    """(N*Ho*Wo, kh*kw*C) windows of the padded channels-last input (one copy), plus (Ho, Wo)."""
    n, c, h, w = x.shape
    ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w, kw, stride[1], padding[1], dilation[1])
    xp = _nhwc_padded(x, *padding)
    sn, sh, sw, sc = xp.strides
    win = as_strided(xp, (n, ho, wo, kh, kw, c),
                     (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc), writeable=False)
    return win.reshape(n * ho * wo, kh * kw * c), ho, wo


def _nhwc_grad_rows(g):
    """(N*Ho*Wo, O): the output gradient with channels last, to match the columns."""
    n, o, ho, wo = g.shape
    return np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(n * ho * wo, o)


def _nhwc_input_grad(gm, w, shape, ho, wo, stride, padding, dilation):
    """Adjoint of the NHWC columns: dcols = g @ W, each window's slice added back in place."""
    n, c, h, wd = shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    dcols = (gm @ w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)).reshape(n, ho, wo, kh, kw, c)
    xp = np.zeros((n, h + 2 * ph, wd + 2 * pw, c), dtype=gm.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw, :] += dcols[:, :, :, i, j]
    return np.ascontiguousarray(xp[:, ph:ph + h, pw:pw + wd, :].transpose(0, 3, 1, 2))


def _nhwc_weight_grad(gm, x, wshape, stride, padding, dilation):
    o, c, kh, kw = wshape
    cols, _, _ = _nhwc_cols(x, kh, kw, stride, padding, dilation)
    return np.ascontiguousarray((gm.T @ cols).reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


def _np_conv2d(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    if _use_nhwc(x.shape[1], groups):
        cols, ho, wo = _nhwc_cols(x, kh, kw, stride, padding, dilation)
        out = cols @ w.transpose(2, 3, 1, 0).reshape(kh * kw * cg, o)  # (N*Ho*Wo, O)
        if b is not None:
            out += b
        return np.ascontiguousarray(out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2))
    cols, ho, wo = _im2col(x, kh, kw, stride, padding, dilation)
    if groups == 1:
        out = np.matmul(w.reshape(o, -1), cols)
    else:
        k = cg * kh * kw
        og = o // groups
        cols = cols.reshape(n, groups, k, ho * wo)
        out = np.matmul(w.reshape(groups, og, k), cols).reshape(n, o, ho * wo)
    out = out.reshape(n, o, ho, wo)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _np_conv2d_input_grad(g, w, shape=(), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    if _use_nhwc(shape[1], groups):
        return _nhwc_input_grad(_nhwc_grad_rows(g), w, shape, ho, wo, stride, padding, dilation)
    g3 = g.reshape(n, o, ho * wo)
    if groups == 1:
        cols = np.matmul(w.reshape(o, -1).T, g3)
    else:
        og = o // groups
        cols = np.matmul(w.reshape(groups, og, -1).transpose(0, 2, 1), g3.reshape(n, groups, og, ho * wo))
    return _col2im(cols.reshape(n, -1, ho * wo), shape, kh, kw, ho, wo, stride, padding, dilation)


def _np_conv2d_weight_grad(x, g, wshape=(), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    o, cg, kh, kw = wshape
    n = x.shape[0]
    if _use_nhwc(x.shape[1], groups):
        return _nhwc_weight_grad(_nhwc_grad_rows(g), x, wshape, stride, padding, dilation)
    cols, ho, wo = _im2col(x, kh, kw, stride, padding, dilation)
    g3 = g.reshape(n, o, ho * wo)
    if groups == 1:
        # sum over the batch and positions: one matmul on (O, N*L) x (N*L, K)
        gw = np.tensordot(g3, cols, axes=([0, 2], [0, 2]))
    else:
        og = o // groups
        gw = np.einsum("ngol,ngkl->gok", g3.reshape(n, groups, og, -1), cols.reshape(n, groups, cg * kh * kw, -1))
    return gw.reshape(wshape)


def _np_conv2d_backward(g, x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                        needs=(True, True, True)):
    """(grad input, grad weight, grad bias) in one op; an output not needed is an empty array."""
    none = np.empty(0, dtype=g.dtype)
    if _use_nhwc(x.shape[1], groups):
        gm = _nhwc_grad_rows(g)  # shared by both matmuls
        gx = _nhwc_input_grad(gm, w, x.shape, g.shape[2], g.shape[3], stride, padding, dilation) if needs[0] else none
        gw = _nhwc_weight_grad(gm, x, w.shape, stride, padding, dilation) if needs[1] else none
    else:
        at = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        gx = _np_conv2d_input_grad(g, w, shape=x.shape, **at) if needs[0] else none
        gw = _np_conv2d_weight_grad(x, g, wshape=w.shape, **at) if needs[1] else none
    gb = g.sum(axis=(0, 2, 3)) if needs[2] else none
    return gx, gw, gb


def _conv_attrs(ctx):
    return {k: ctx.attrs[k] for k in ("stride", "padding", "dilation", "groups")}


def _vjp_conv2d(ctx, saved, g):
    x, w = saved
    at = _conv_attrs(ctx)
    if not _recording():  # one fused op: the transposed gradient is made once for both matmuls
        needs = tuple(ctx.needs) + ((False,) if len(ctx.needs) < 3 else ())
        gx, gw, gb = apply(CONV2D_BACKWARD, (g, x, w), {**at, "needs": needs}, dtype=(g.dtype,) * 3,
                           compute=g.dtype)
        return (gx if needs[0] else None, gw if needs[1] else None) + ((gb if needs[2] else None,)
                                                                         if len(ctx.shapes) > 2 else ())
    gx = apply(CONV2D_INPUT_GRAD, (g, w), {"shape": tuple(ctx.shapes[0]), **at}) if ctx.needs[0] else None
    gw = apply(CONV2D_WEIGHT_GRAD, (x, g), {"wshape": tuple(ctx.shapes[1]), **at}) if ctx.needs[1] else None
    out = (gx, gw)
    if len(ctx.shapes) > 2:
        out += (g.sum((0, 2, 3)) if ctx.needs[2] else None,)
    return out


def _vjp_conv2d_input_grad(ctx, saved, gg):
    # dX = A(G, W) is bilinear: <gg, A(G, W)> = <conv(gg, W), G> = <B(gg, G), W>
    g, w = saved
    at = _conv_attrs(ctx)
    dg = apply(CONV2D, (gg, w, None), at) if ctx.needs[0] else None
    dw = apply(CONV2D_WEIGHT_GRAD, (gg, g), {"wshape": tuple(ctx.shapes[1]), **at}) if ctx.needs[1] else None
    return dg, dw


def _vjp_conv2d_weight_grad(ctx, saved, gg):
    # dW = B(X, G): <gg, B(X, G)> = <G, conv(X, gg)> = <A(G, gg), X>
    x, g = saved
    at = _conv_attrs(ctx)
    dx = apply(CONV2D_INPUT_GRAD, (g, gg), {"shape": tuple(ctx.shapes[0]), **at}) if ctx.needs[0] else None
    dg = apply(CONV2D, (x, gg, None), at) if ctx.needs[1] else None
    return dx, dg


CONV2D = defop("conv2d", "linalg", _np_conv2d, dtype=_first_dtype, cast_inputs=True, vjp=_vjp_conv2d, save=(0, 1),
               grad_name="ConvolutionBackward0")
CONV2D_INPUT_GRAD = defop("conv2d_input_grad", "linalg", _np_conv2d_input_grad, dtype=_first_dtype,
                          cast_inputs=True, vjp=_vjp_conv2d_input_grad, save=(0, 1),
                          grad_name="ConvolutionBackwardBackward0")
CONV2D_WEIGHT_GRAD = defop("conv2d_weight_grad", "linalg", _np_conv2d_weight_grad, dtype=_first_dtype,
                           cast_inputs=True, vjp=_vjp_conv2d_weight_grad, save=(0, 1),
                           grad_name="ConvolutionBackwardBackward0")


CONV2D_BACKWARD = defop("conv2d_backward", "linalg", _np_conv2d_backward, dtype=lambda a, k: (a[0].dtype,) * 3,
                       nout=3)


def conv2d(x, w, b, stride, padding, dilation, groups):
    return apply(CONV2D, (x, w, b), {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups})


# ================================================================================================
# pooling
# ================================================================================================
def _pool_geometry(h, w, kernel, stride, padding, dilation, ceil_mode):
    ho = _out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    wo = _out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    # room on the bottom/right for windows that ceil_mode lets run past the padding
    eh = max(0, (ho - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1 - (h + 2 * padding[0]))
    ew = max(0, (wo - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1 - (w + 2 * padding[1]))
    return ho, wo, eh, ew


def _padded(x, padding, extra, value):
    n, c, h, w = x.shape  # 4-D only: callers add the batch dim
    (ph, pw), (eh, ew) = padding, extra
    if not (ph or pw or eh or ew):
        return x
    out = np.full((n, c, h + 2 * ph + eh, w + 2 * pw + ew), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _np_max_pool2d(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """(max of each window, torch's indices: the max's flat position in the input's H*W plane).

    A running max over the kernel's kh*kw offsets, each a strided view of the padded
    input: a few passes over the output, where an argmax along a length-4 axis would
    crawl. Ties keep the first position, as in torch."""
    if x.ndim == 3:  # unbatched (C, H, W): torch pools it directly, so one node either way
        v, i = _np_max_pool2d(x[None], kernel, stride, padding, dilation, ceil_mode)
        return v[0], i[0]
    n, c, h, w = x.shape
    kh, kw = kernel
    (sh, sw), (dh, dw), (ph, pw) = stride, dilation, padding
    ho, wo, eh, ew = _pool_geometry(h, w, kernel, stride, padding, dilation, ceil_mode)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return _max_pool2d_nonfinite(x, kernel, stride, padding, dilation, ho, wo, eh, ew)
    xp = _padded(x, padding, (eh, ew), -np.inf)
    best = pos = None
    for i in range(kh):
        for j in range(kw):
            v = xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            off = i * dh * w + j * dw  # this kernel position's offset from the window start, in H*W
            if best is None:
                best = v.copy()
                pos = np.full(best.shape, off, dtype=np.int64)
                continue
            better = v > best  # strictly: a tie keeps the earlier position
            np.maximum(best, v, out=best)
            pos += better * (off - pos)
    pos += (np.arange(ho) * sh - ph)[:, None] * w + (np.arange(wo) * sw - pw)[None, :]
    return best, pos


def _max_pool2d_nonfinite(x, kernel, stride, padding, dilation, ho, wo, eh, ew):
    """The same with NaN or -inf present: NaN wins (the last one, as torch scans), and a window
    whose values are all -inf reports its first real position, as torch does."""
    n, c, h, w = x.shape
    kh, kw = kernel
    (sh, sw), (dh, dw), (ph, pw) = stride, dilation, padding
    xp = _padded(x, padding, (eh, ew), -np.inf)
    real = _padded(np.ones((1, 1, h, w), bool), padding, (eh, ew), False)
    rows0 = (np.arange(ho) * sh - ph)[:, None]
    cols0 = (np.arange(wo) * sw - pw)[None, :]
    best = np.full((n, c, ho, wo), -np.inf, dtype=x.dtype)
    pos = np.full((n, c, ho, wo), -1, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            sl = (slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
            v = xp[(slice(None), slice(None)) + sl]
            inside = real[(0, 0) + sl]
            here = (rows0 + i * dh) * w + (cols0 + j * dw)
            take = ((v > best) | np.isnan(v) | (pos < 0)) & inside
            best = np.where(take, v, best)
            pos = np.where(take, here, pos)
    return best, pos


def _np_max_pool2d_backward(g, idx, shape=()):
    if len(shape) == 3:
        return _np_max_pool2d_backward(g[None], idx[None], (1,) + tuple(shape))[0]
    n, c, h, w = shape
    base = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    out = np.bincount((idx + base).reshape(-1), weights=g.reshape(-1), minlength=n * c * h * w)
    return out.astype(g.dtype, copy=False).reshape(shape)


def _vjp_max_pool2d(ctx, saved, g, _gi=None):
    (idx,) = saved
    return (apply(MAX_POOL2D_BACKWARD, (g, idx), {"shape": tuple(ctx.shapes[0])}),)


def _vjp_max_pool2d_backward(ctx, saved, gg):
    # the adjoint of scattering into the input plane is gathering from it
    (idx,) = saved
    h, w = ctx.shape[-2:]
    lead = tuple(ctx.shape[:-2])
    picked = gg.reshape(lead + (h * w,)).gather(-1, idx.reshape(lead + (-1,)))
    return picked.reshape(idx.shape), None


MAX_POOL2D = defop("max_pool2d", "reduce", _np_max_pool2d, dtype=lambda a, k: (a[0].dtype, D.int64), nout=2,
                   vjp=_vjp_max_pool2d, save=("out1",), grad_name="MaxPool2DWithIndicesBackward0")
MAX_POOL2D_BACKWARD = defop("max_pool2d_backward", "index", _np_max_pool2d_backward, dtype=_first_dtype,
                            vjp=_vjp_max_pool2d_backward, save=(1,),
                            grad_name="MaxPool2DWithIndicesBackwardBackward0")


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    """(values, indices)."""
    return apply(MAX_POOL2D, (x,), {"kernel": kernel, "stride": stride, "padding": padding,
                                    "dilation": dilation, "ceil_mode": ceil_mode})


def _avg_divisors(n, k, s, p, o, count_include_pad):
    """Per output position along one axis: how many input positions its window covers."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    size = end - start
    if count_include_pad:
        return size
    return np.minimum(end, n) - np.maximum(start, 0)


def _avg_geometry(shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    h, w = shape[-2:]
    ho, wo, eh, ew = _pool_geometry(h, w, kernel, stride, padding, (1, 1), ceil_mode)
    if divisor_override:
        div = np.full((ho, wo), float(divisor_override))
    else:
        dh = _avg_divisors(h, kernel[0], stride[0], padding[0], ho, count_include_pad)
        dw = _avg_divisors(w, kernel[1], stride[1], padding[1], wo, count_include_pad)
        div = np.outer(dh, dw).astype(np.float64)
    return ho, wo, eh, ew, div


def _np_avg_pool2d(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    if x.ndim == 3:
        return _np_avg_pool2d(x[None], kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)[0]
    xw = _wide(x)
    ho, wo, eh, ew, div = _avg_geometry(x.shape, kernel, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
    xp = _padded(xw, padding, (eh, ew), 0)
    win = _windows(xp, kernel[0], kernel[1], ho, wo, stride, (1, 1))
    return win.sum(axis=(2, 3)) / div.astype(xw.dtype)


def _np_avg_pool2d_backward(g, shape=(), kernel=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False,
                            count_include_pad=True, divisor_override=None):
    if len(shape) == 3:
        return _np_avg_pool2d_backward(g[None], (1,) + tuple(shape), kernel, stride, padding, ceil_mode,
                                       count_include_pad, divisor_override)[0]
    n, c, h, w = shape
    ho, wo, eh, ew, div = _avg_geometry(shape, kernel, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override)
    gd = g / div.astype(g.dtype)
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((n, c, h + 2 * ph + eh, w + 2 * pw + ew), dtype=g.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += gd
    return np.ascontiguousarray(xp[:, :, ph:ph + h, pw:pw + w])


_AVG_KEYS = ("kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _vjp_avg_pool2d(ctx, saved, g):
    at = {k: ctx.attrs[k] for k in _AVG_KEYS}
    return (apply(AVG_POOL2D_BACKWARD, (g,), {"shape": tuple(ctx.shapes[0]), **at}),)


def _vjp_avg_pool2d_backward(ctx, saved, gg):
    # backward is the transpose of a linear map; its adjoint is the pooling itself
    return (apply(AVG_POOL2D, (gg,), {k: ctx.attrs[k] for k in _AVG_KEYS}),)


AVG_POOL2D = defop("avg_pool2d", "reduce", _np_avg_pool2d, dtype=_first_dtype, vjp=_vjp_avg_pool2d,
                   grad_name="AvgPool2DBackward0")
AVG_POOL2D_BACKWARD = defop("avg_pool2d_backward", "reduce", _np_avg_pool2d_backward, dtype=_first_dtype,
                            vjp=_vjp_avg_pool2d_backward, grad_name="AvgPool2DBackwardBackward0")


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return apply(AVG_POOL2D, (x,), {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode,
                                    "count_include_pad": count_include_pad, "divisor_override": divisor_override})


def adaptive_matrix(n: int, o: int, dtype) -> np.ndarray:
    """(o, n) matrix whose row i averages input positions floor(i*n/o) .. ceil((i+1)*n/o)."""
    m = np.zeros((o, n), dtype=dtype)
    for i in range(o):
        s, e = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, s:e] = 1.0 / (e - s)
    return m


def _np_adaptive_avg_pool2d(x, out_size=(1, 1)):
    xw = _wide(x)
    ah = adaptive_matrix(x.shape[-2], out_size[0], xw.dtype)
    aw = adaptive_matrix(x.shape[-1], out_size[1], xw.dtype)
    # separable: average the rows, then the columns
    return np.matmul(np.matmul(ah, xw), aw.T)


def _vjp_adaptive_avg_pool2d(ctx, saved, g):
    h, w = ctx.shapes[0][-2:]
    dt = D.compute_np(g.dtype)
    # (the averaging matrices go where g is: a CUDA g cannot be multiplied by CPU matrices)
    ah = _from_np(adaptive_matrix(h, ctx.out_size[0], dt), g.dtype).to(g.device)
    aw = _from_np(adaptive_matrix(w, ctx.out_size[1], dt), g.dtype).to(g.device)
    return (L.matmul(L.matmul(ah.t(), g), aw),)


ADAPTIVE_AVG_POOL2D = defop("adaptive_avg_pool2d", "reduce", _np_adaptive_avg_pool2d, dtype=_first_dtype,
                            vjp=_vjp_adaptive_avg_pool2d, grad_name="AdaptiveAvgPool2DBackward0")


def adaptive_avg_pool2d(x, out_size):
    return apply(ADAPTIVE_AVG_POOL2D, (x,), {"out_size": out_size})


# ================================================================================================
# constant padding
# ================================================================================================
def _pad_slices(shape, pad):
    """For each dim: (slice of the output the input lands in, slice of the input that is kept)."""
    nd = len(shape)
    out_shape = list(shape)
    dst = [slice(None)] * nd
    src = [slice(None)] * nd
    for k in range(len(pad) // 2):
        d = nd - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        n = shape[d]
        out_shape[d] = n + lo + hi
        dst[d] = slice(max(lo, 0), max(lo, 0) + n + min(lo, 0) + min(hi, 0))
        src[d] = slice(max(-lo, 0), n - max(-hi, 0))
    return tuple(out_shape), tuple(dst), tuple(src)


def _np_constant_pad(x, pad=(), value=0.0):
    out_shape, dst, src = _pad_slices(x.shape, pad)
    out = np.full(out_shape, value, dtype=x.dtype)
    out[dst] = x[src]
    return out


def _vjp_constant_pad(ctx, saved, g):
    # the gradient is the part of g the input landed in, padded back where the input was cropped
    neg = tuple(-p for p in ctx.pad)
    return (apply(CONSTANT_PAD, (g,), {"pad": neg, "value": 0.0}),)


CONSTANT_PAD = defop("constant_pad_nd", "movement", _np_constant_pad, dtype=_first_dtype, vjp=_vjp_constant_pad,
                     grad_name="ConstantPadNdBackward0")


def constant_pad(x, pad, value):
    return apply(CONSTANT_PAD, (x,), {"pad": tuple(pad), "value": value})


# Decompositions into plain ops, for a tracer that wants to fuse them (see module docstring).
DECOMPOSITIONS = {
    "softmax": softmax_decomposed,
    "log_softmax": log_softmax_decomposed,
    "mse_loss": mse_loss_decomposed,
    "gelu": gelu_decomposed,
    "layer_norm": layer_norm_decomposed,
}
