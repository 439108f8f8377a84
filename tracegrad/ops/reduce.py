"""Reductions: sum, mean, prod, max/min, arg-max/min, var/std, norm, logsumexp, any/all, cumsum.

`dim` may be None (all dims), an int, or a tuple; `keepdim` keeps reduced dims as
size 1. max/min over a dim return a named tuple (values, indices), as torch does.
The vjp rules put the gradient back in the input's shape by unsqueezing the
reduced dims and broadcasting."""
from __future__ import annotations

import collections

import numpy as np

from .. import dtypes as D
from ..dispatch import apply
from ..tensor import Tensor
from .shape_util import wrap_dim, wrap_dims
from .table import defop


def _return_type(name, fields=("values", "indices")):
    base = collections.namedtuple(name, fields)

    def __repr__(self):
        body = ",\n".join(f"{f}={getattr(self, f)!r}" for f in fields)
        return f"tracegrad.return_types.{name}(\n{body})"

    return type(name, (base,), {"__repr__": __repr__, "__slots__": ()})


class return_types:
    max = _return_type("max")
    min = _return_type("min")
    sort = _return_type("sort")
    topk = _return_type("topk")
    var_mean = _return_type("var_mean", ("var", "mean"))
    std_mean = _return_type("std_mean", ("std", "mean"))


def _unreduce(g, shape, dims, keepdim):
    """Shape a reduction's gradient back to the input's shape (a broadcast view)."""
    if not keepdim and dims:
        kshape = tuple(1 if i in dims else n for i, n in enumerate(shape))
        g = g.reshape(kshape)
    return g.expand(shape)


def _red_name(base):
    return lambda a: f"{base}Backward{1 if a.get('explicit_dim') else 0}"


# ---- sum / mean / prod ----------------------------------------------------------------
def _np_sum(x, dims, keepdim, explicit_dim=False, dtype=None):
    # ufunc.reduce directly: np.sum's Python wrapper costs as much as a small sum itself
    return np.add.reduce(x, axis=dims, keepdims=keepdim, dtype=None if dtype is None else D.compute_np(dtype))


def _vjp_sum(ctx, saved, g):
    return (_unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim),)


SUM = defop("sum", "reduce", _np_sum, vjp=_vjp_sum, grad_name=_red_name("Sum"), lowering=("add", 0), quiet=False)


def _np_mean(x, dims, keepdim, explicit_dim=False, dtype=None):
    if x.size == 0 and not dims:
        return np.full((), np.nan, dtype=x.dtype)
    return np.mean(x, axis=dims, keepdims=keepdim, dtype=x.dtype)


def _vjp_mean(ctx, saved, g):
    n = 1
    for d in ctx.dims:
        n *= ctx.shapes[0][d]
    return (_unreduce(g / n if n else g * float("nan"), ctx.shapes[0], ctx.dims, ctx.keepdim),)


# mean lowers to a sum scaled by 1/n afterwards ({0}: the sum, {inv_n}: 1/n as a constant)
MEAN = defop("mean", "reduce", _np_mean, vjp=_vjp_mean, grad_name=_red_name("Mean"), lowering=("add", 0, "{0} * {inv_n}"))


def _np_prod(x, dims, keepdim, explicit_dim=False, dtype=None):
    return np.prod(x, axis=dims, keepdims=keepdim, dtype=None if dtype is None else D.compute_np(dtype))


def _vjp_prod(ctx, saved, g):
    x, out = saved
    xv = x._values()
    dims = ctx.dims
    # the product of all other elements: exclusive cumulative products from both sides
    flat = np.moveaxis(xv, dims, tuple(range(xv.ndim - len(dims), xv.ndim)))
    lead = flat.shape[: xv.ndim - len(dims)]
    flat = flat.reshape(lead + (-1,))
    left = np.cumprod(np.concatenate([np.ones(lead + (1,), flat.dtype), flat[..., :-1]], -1), -1)
    right = np.flip(np.cumprod(np.flip(np.concatenate([flat[..., 1:], np.ones(lead + (1,), flat.dtype)], -1), -1), -1), -1)
    others = (left * right).reshape(lead + tuple(xv.shape[d] for d in dims))
    others = np.moveaxis(others, tuple(range(xv.ndim - len(dims), xv.ndim)), dims)
    from ..creation import from_values

    return (_unreduce(g, ctx.shapes[0], dims, ctx.keepdim) * from_values(others, x.dtype),)


PROD = defop("prod", "reduce", _np_prod, vjp=_vjp_prod, save=(0, "out"), grad_name=_red_name("Prod"),
             lowering=("mul", 1))


def _sum_dtype(x, dtype):
    if dtype is not None:
        return dtype
    return D.int64 if x.dtype.category <= D._INT else x.dtype


def _dims(x, dim):
    return wrap_dims(dim, x.ndim) if dim is not None else tuple(range(x.ndim))


def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Sum over `dim` (all dims by default); integer and bool inputs sum in int64."""
    if isinstance(dim, D.DType):
        dim, dtype = None, dim
    dims = _dims(input, dim)
    dt = _sum_dtype(input, dtype)
    r = apply(SUM, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None,
                              "dtype": dt if dt is not input.dtype else None}, dtype=dt)
    return _out(out, r)


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    from .pointwise import where, isnan

    return sum(where(isnan(input), 0.0, input), dim, keepdim, dtype=dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    dt = dtype or input.dtype
    if not dt.is_floating_point:
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {dt.short}"
        )
    if dt is not input.dtype:
        input = input.to(dt)
    dims = _dims(input, dim)
    r = apply(MEAN, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None}, dtype=dt)
    return _out(out, r)


def prod(input, dim=None, keepdim=False, *, dtype=None):
    dims = _dims(input, dim) if dim is None else (wrap_dim(dim, input.ndim),)
    dt = _sum_dtype(input, dtype)
    return apply(PROD, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None,
                                  "dtype": dt if dt is not input.dtype else None}, dtype=dt)


# ---- max / min --------------------------------------------------------------------
def _np_amax(x, dims, keepdim, is_max=True, explicit_dim=False):
    if x.size == 0:
        raise IndexError("max(): Expected reduction dim to be specified for input.numel() == 0.")
    return (np.max if is_max else np.min)(x, axis=dims, keepdims=keepdim)


def _vjp_amax(ctx, saved, g):
    x, out = saved
    dims = ctx.dims
    o = _unreduce(out, ctx.shapes[0], dims, ctx.keepdim)
    mask = (x == o).to(g.dtype)
    count = mask.sum(dims, keepdim=True)
    return (_unreduce(g, ctx.shapes[0], dims, ctx.keepdim) * mask / count,)


AMAX = defop("amax", "reduce", _np_amax, vjp=_vjp_amax, save=(0, "out"),
             grad_name=lambda a: ("Amax" if a["is_max"] else "Amin") + "Backward0" if a.get("explicit_dim")
             else ("Max" if a["is_max"] else "Min") + "Backward1",
             lowering=lambda a: ("max", "-inf") if a.get("is_max", True) else ("min", "inf"))


def _np_max_dim(x, dim, keepdim, is_max=True):
    if x.shape and x.shape[dim] == 0:
        raise IndexError(f"{'max' if is_max else 'min'}(): Expected reduction dim {dim} to have non-zero size.")
    if x.ndim == 0:
        return x.copy(), np.zeros((), np.int64)
    idx = (np.argmax if is_max else np.argmin)(x, axis=dim)
    idx = np.expand_dims(idx, dim)
    vals = np.take_along_axis(x, idx, axis=dim)
    if not keepdim:
        vals, idx = vals.squeeze(dim), idx.squeeze(dim)
    return vals, idx.astype(np.int64)


def _vjp_max_dim(ctx, saved, g, gi=None):
    (idx,) = saved
    from ..creation import zeros
    from .index import scatter

    dim = ctx.dim
    shape = ctx.shapes[0]
    if not shape:
        return (g,)
    if not ctx.keepdim:
        g = g.unsqueeze(dim)
        idx = idx.unsqueeze(dim)
    return (scatter(zeros(shape, dtype=g.dtype), dim, idx, g),)


MAX_DIM = defop("max_dim", "reduce", _np_max_dim, vjp=_vjp_max_dim, save=("out1",), nout=2,
                grad_name=lambda a: ("Max" if a["is_max"] else "Min") + "Backward0",
                dtype=lambda args, attrs: (args[0].dtype, D.int64))


def _max_min(input, dim, keepdim, is_max, other):
    name = "max" if is_max else "min"
    if isinstance(dim, Tensor):  # torch.max(a, b) is maximum
        other, dim = dim, None
    if other is not None:
        from .pointwise import maximum, minimum

        return (maximum if is_max else minimum)(input, other)
    if dim is None:
        if input.numel() == 0:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument.")
        return apply(AMAX, (input,), {"dims": tuple(range(input.ndim)), "keepdim": False, "is_max": is_max})
    d = wrap_dim(dim, input.ndim)
    vals, idx = apply(MAX_DIM, (input,), {"dim": d, "keepdim": keepdim, "is_max": is_max})
    rt = return_types.max if is_max else return_types.min
    return rt(vals, idx)


def max(input, dim=None, keepdim=False, *, out=None, other=None):
    return _max_min(input, dim, keepdim, True, other)


def min(input, dim=None, keepdim=False, *, out=None, other=None):
    return _max_min(input, dim, keepdim, False, other)


def amax(input, dim=(), keepdim=False):
    dims = wrap_dims(dim if dim != () else None, input.ndim)
    return apply(AMAX, (input,), {"dims": dims, "keepdim": keepdim, "is_max": True, "explicit_dim": True})


def amin(input, dim=(), keepdim=False):
    dims = wrap_dims(dim if dim != () else None, input.ndim)
    return apply(AMAX, (input,), {"dims": dims, "keepdim": keepdim, "is_max": False, "explicit_dim": True})


def _np_argmax(x, dim, keepdim, is_max=True):
    f = np.argmax if is_max else np.argmin
    if dim is None:
        r = np.asarray(f(x.reshape(-1)))
        return r.reshape((1,) * x.ndim) if keepdim else r
    return f(x, axis=dim, keepdims=keepdim)


ARGMAX = defop("argmax", "reduce", _np_argmax, dtype=lambda a, k: D.int64)


def argmax(input, dim=None, keepdim=False):
    if input.numel() == 0:
        raise RuntimeError("argmax(): Expected reduction dim to be specified for input.numel() == 0.")
    d = None if dim is None else wrap_dim(dim, input.ndim)
    return apply(ARGMAX, (input,), {"dim": d, "keepdim": keepdim, "is_max": True})


def argmin(input, dim=None, keepdim=False):
    if input.numel() == 0:
        raise RuntimeError("argmin(): Expected reduction dim to be specified for input.numel() == 0.")
    d = None if dim is None else wrap_dim(dim, input.ndim)
    return apply(ARGMAX, (input,), {"dim": d, "keepdim": keepdim, "is_max": False})


# ---- var / std ------------------------------------------------------------------------
def _np_var(x, dims, keepdim, correction, sqrt=False):
    n = 1
    for d in dims:
        n *= x.shape[d]
    v = np.var(x, axis=dims, keepdims=keepdim, ddof=0)
    denom = n - correction
    v = v * (n / denom) if denom > 0 else v * (np.inf if n else np.nan)
    return np.sqrt(v) if sqrt else v


def _vjp_var(ctx, saved, g):
    x, out = saved
    dims = ctx.dims
    n = 1
    for d in dims:
        n *= ctx.shapes[0][d]
    mu = x.mean(dims, keepdim=True)
    gv = _unreduce(g, ctx.shapes[0], dims, ctx.keepdim)
    if ctx.sqrt:
        gv = gv / (2 * _unreduce(out, ctx.shapes[0], dims, ctx.keepdim))
    return (gv * (2.0 / (n - ctx.correction)) * (x - mu),)


VAR = defop("var", "reduce", _np_var, vjp=_vjp_var, save=(0, "out"),
            grad_name=lambda a: "StdBackward0" if a["sqrt"] else "VarBackward0")


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased in (None, True) else 0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"std and var only support floating point and complex dtypes")
    return apply(VAR, (input,), {"dims": _dims(input, dim), "keepdim": keepdim,
                                 "correction": _correction(unbiased, correction), "sqrt": False})


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"std and var only support floating point and complex dtypes")
    return apply(VAR, (input,), {"dims": _dims(input, dim), "keepdim": keepdim,
                                 "correction": _correction(unbiased, correction), "sqrt": True})


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return return_types.var_mean(var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return return_types.std_mean(std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


# ---- norm / logsumexp -------------------------------------------------------------------
def _np_norm(x, dims, keepdim, p):
    a = np.abs(x)
    if p == float("inf"):
        return np.max(a, axis=dims, keepdims=keepdim) if a.size else np.zeros(())
    if p == -float("inf"):
        return np.min(a, axis=dims, keepdims=keepdim)
    if p == 0:
        return np.sum(a != 0, axis=dims, keepdims=keepdim).astype(x.dtype)
    if p == 2:
        return np.sqrt(np.sum(a * a, axis=dims, keepdims=keepdim))
    if p == 1:
        return np.sum(a, axis=dims, keepdims=keepdim)
    return np.sum(a ** p, axis=dims, keepdims=keepdim) ** (1.0 / p)


def _vjp_norm(ctx, saved, g):
    from .pointwise import where, sign, abs as _abs

    x, out = saved
    p = ctx.p
    o = _unreduce(out, ctx.shapes[0], ctx.dims, ctx.keepdim)
    gg = _unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim)
    if p == 2:
        return (gg * where(o == 0, x * 0.0, x / o),)
    if p == 1:
        return (gg * sign(x),)
    if p in (float("inf"), -float("inf")):
        mask = (_abs(x) == o).to(g.dtype)
        return (gg * sign(x) * mask / mask.sum(ctx.dims, keepdim=True),)
    if p == 0:
        return (gg * 0.0 * x,)
    return (gg * sign(x) * _abs(x) ** (p - 1) / where(o == 0, o + 1, o ** (p - 1)),)


NORM = defop("norm", "reduce", _np_norm, vjp=_vjp_norm, save=(0, "out"), grad_name="LinalgVectorNormBackward0")


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    if p == "fro" or p is None:
        p = 2
    if not input.dtype.is_floating_point:
        raise RuntimeError(
            f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {input.dtype.short}")
    return apply(NORM, (input,), {"dims": _dims(input, dim), "keepdim": keepdim, "p": float(p)})


def _np_logsumexp(x, dims, keepdim):
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=dims, keepdims=keepdim))
    m = np.max(x, axis=dims, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    r = np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True)) + m
    return r if keepdim else np.squeeze(r, axis=dims)


def _vjp_logsumexp(ctx, saved, g):
    from .pointwise import exp

    x, out = saved
    return (_unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim) * exp(x - _unreduce(out, ctx.shapes[0], ctx.dims, ctx.keepdim)),)


LOGSUMEXP = defop("logsumexp", "reduce", _np_logsumexp, vjp=_vjp_logsumexp, save=(0, "out"),
                  dtype=lambda args, attrs: args[0].dtype if args[0].dtype.is_floating_point else D.get_default_dtype())


def logsumexp(input, dim, keepdim=False):
    if not input.dtype.is_floating_point:
        input = input.to(D.get_default_dtype())
    return apply(LOGSUMEXP, (input,), {"dims": wrap_dims(dim, input.ndim), "keepdim": keepdim})


# ---- any / all / cumsum -------------------------------------------------------------------
ANY = defop("any", "reduce", lambda x, dims, keepdim: np.any(x, axis=dims, keepdims=keepdim), dtype=lambda a, k: D.bool_)
ALL = defop("all", "reduce", lambda x, dims, keepdim: np.all(x, axis=dims, keepdims=keepdim), dtype=lambda a, k: D.bool_)


def any(input, dim=None, keepdim=False):
    return apply(ANY, (input,), {"dims": _dims(input, dim), "keepdim": keepdim})


def all(input, dim=None, keepdim=False):
    return apply(ALL, (input,), {"dims": _dims(input, dim), "keepdim": keepdim})


def _vjp_cumsum(ctx, saved, g):
    d = ctx.dim
    return (g.flip(d).cumsum(d).flip(d),)


CUMSUM = defop("cumsum", "scan", lambda x, dim, dtype=None: np.cumsum(x, axis=dim, dtype=None if dtype is None else D.compute_np(dtype)),
               vjp=_vjp_cumsum)


def cumsum(input, dim, *, dtype=None):
    d = wrap_dim(dim, input.ndim)
    dt = _sum_dtype(input, dtype)
    if input.ndim == 0:
        return input.to(dt).clone()
    return apply(CUMSUM, (input,), {"dim": d, "dtype": dt if dt is not input.dtype else None}, dtype=dt)


CUMPROD = defop("cumprod", "scan", lambda x, dim: np.cumprod(x, axis=dim))


def cumprod(input, dim, *, dtype=None):
    d = wrap_dim(dim, input.ndim)
    dt = _sum_dtype(input, dtype)
    return apply(CUMPROD, (input,), {"dim": d}, dtype=dt)


def _out(out, r):
    if out is None:
        return r
    from .inplace import write_out

    return write_out(out, r)
