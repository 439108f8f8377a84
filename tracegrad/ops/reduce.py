"""Reductions: sum, mean, prod, max/min, arg-max/min, var/std, norm, logsumexp, any/all, cumsum.

`dim` may be None (all dims), an int, or a tuple; `keepdim` keeps reduced dims as
size 1. max/min over a dim return a named tuple (values, indices), as torch does.
The vjp rules put the gradient back in the input's shape by unsqueezing the
reduced dims and broadcasting."""
from __future__ import annotations

import builtins
import collections
import warnings

import numpy as np

from .. import dtypes as D
from ..dispatch import apply
from ..tensor import Tensor
from .shape_util import wrap_dim, wrap_dims
from .table import defop
from . import movement as _movement  # the vjps build views directly
from .. import dispatch as _dispatch
from ..autograd.grad_mode import _state as _grad_state
from ..device import OnDevice
from .inplace import with_out as _out


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
    """Shape a reduction's gradient back to the input's shape (a broadcast view). Runs the view
    primitives directly: the shapes are right by construction, so the public checks are skipped."""
    shape = tuple(shape)
    gd = g._data
    if gd.shape == shape:
        return g
    kshape = None
    if not keepdim and dims and len(dims) < len(shape):  # put the reduced dims back as size 1
        kshape = tuple(1 if i in dims else n for i, n in enumerate(shape))
    if _dispatch.TRACER[0] is None and not (g._requires_grad and _grad_state["enabled"]):
        # nothing to record (the usual backward pass): the very view apply() would make, built here
        try:
            t = Tensor._make(_movement._np_expand(gd.reshape(kshape) if kshape else gd, shape), g.dtype)
        except OnDevice:  # device memory: apply() below makes the view
            return _unreduce_views(g, shape, kshape)
        t._base = g._base if g._base is not None else g
        t._vc = g._vc
        return t
    return _unreduce_views(g, shape, kshape)


def _unreduce_views(g, shape, kshape):
    """The same view through apply(): recorded when tracing or differentiable, and for device memory."""
    if kshape:
        g = apply(_movement.VIEW, (g,), {"shape": kshape})
    return apply(_movement.EXPAND, (g,), {"shape": shape})


def _red_name(base):
    return lambda a: f"{base}Backward{1 if a.get('explicit_dim') else 0}"


# ---- sum / mean / prod ----------------------------------------------------------------
def _acc(x):
    """float16 accumulates in float32, as torch's CPU reductions do (bfloat16 arrives as float32 already);
    the result is rounded to float16 once, when it is wrapped."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _count(shape, dims) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _np_sum(x, dims, keepdim, explicit_dim=False, dtype=None):
    # ufunc.reduce directly: np.sum's Python wrapper costs as much as a small sum itself
    if dtype is None:
        return np.add.reduce(_acc(x), axis=dims, keepdims=keepdim)
    return np.add.reduce(x, axis=dims, keepdims=keepdim, dtype=D.compute_np(dtype))


def _vjp_sum(ctx, saved, g):
    return (_unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim),)


# not quiet=False: inf + -inf and float overflow would warn in NumPy, never in torch
SUM = defop("sum", "reduce", _np_sum, vjp=_vjp_sum, grad_name=_red_name("Sum"), lowering=("add", 0))


def _np_mean(x, dims, keepdim, explicit_dim=False, dtype=None):
    # sum / n: an empty slice gives 0 / 0 = nan, as in torch, without NumPy's "Mean of empty slice" warning
    return np.add.reduce(_acc(x), axis=dims, keepdims=keepdim) / _count(x.shape, dims)


def _vjp_mean(ctx, saved, g):
    n = 1
    for d in ctx.dims:
        n *= ctx.shapes[0][d]
    return (_unreduce(g / n if n else g * float("nan"), ctx.shapes[0], ctx.dims, ctx.keepdim),)


# mean lowers to a sum scaled by 1/n afterwards ({0}: the sum, {inv_n}: 1/n as a constant)
MEAN = defop("mean", "reduce", _np_mean, vjp=_vjp_mean, grad_name=_red_name("Mean"), lowering=("add", 0, "{0} * {inv_n}"))


def _np_prod(x, dims, keepdim, explicit_dim=False, dtype=None):
    if dtype is None:
        return np.multiply.reduce(_acc(x), axis=dims, keepdims=keepdim)
    return np.multiply.reduce(x, axis=dims, keepdims=keepdim, dtype=D.compute_np(dtype))


def _prod_others(x, dim):
    """For each element of x, the product of the other elements along `dim`: the products
    of everything before it times everything after it (exact when x holds zeros, unlike out / x)."""
    from ..creation import ones
    from .movement import cat, narrow

    n = x.shape[dim]
    if n <= 1:
        return x * 0.0 + 1.0
    one = ones(tuple(1 if i == dim else s for i, s in enumerate(x.shape)), dtype=x.dtype)
    before = cat([one, narrow(x, dim, 0, n - 1)], dim).cumprod(dim)
    after = cat([narrow(x, dim, 1, n - 1), one], dim).flip(dim).cumprod(dim).flip(dim)
    return before * after


def _vjp_prod(ctx, saved, g):
    x, out = saved
    dims = ctx.dims
    if not dims:  # the product of one number
        return (g,)
    if len(dims) == 1:
        others = _prod_others(x, dims[0])
    else:  # all dims: work on the flattened tensor
        others = _prod_others(x.reshape(-1), 0).reshape(ctx.shapes[0])
    return (_unreduce(g, ctx.shapes[0], dims, ctx.keepdim) * others,)


PROD = defop("prod", "reduce", _np_prod, vjp=_vjp_prod, save=(0, "out"), grad_name=_red_name("Prod"),
             lowering=("mul", 1))


def _sum_dtype(x, dtype):
    if dtype is not None:
        return dtype
    return D.int64 if x.dtype.category <= D._INT else x.dtype


def _dims(x, dim):
    """A reduction's dims as a sorted tuple; None and () mean every dim. A 0-d tensor accepts
    dim 0 or -1 and has nothing to reduce."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(x.ndim))
    dims = wrap_dims(dim, x.ndim)
    return dims if x.ndim else ()


# `x.sum()` of a float tensor, the most common reduction (every loss ends in one), skips the
# general path: its dims, attrs and output dtype are known from the input's ndim alone.
# The attrs dicts are shared by every node that records such a sum, so nothing may write to them.
_ALL_DIMS = [tuple(range(n)) for n in range(65)]
_SUM_ALL_ATTRS = [{"dims": d, "keepdim": False, "explicit_dim": False, "dtype": None} for d in _ALL_DIMS]
_SUM_FAST = {D.float32: np.dtype(np.float32), D.float64: np.dtype(np.float64)}
_add_reduce, _empty = np.add.reduce, np.empty
_make_tensor = Tensor._make
_TRACER, _quiet_run = _dispatch.TRACER, _dispatch.quiet_run


def _fast_sum(op, input, dim, keepdim):
    """sum or mean (op) of a float32/float64 tensor over all dims or one int dim, without the general
    path's attrs and dtype rules; None for anything else (the general path then decides)."""
    x = input._data
    n = x.ndim
    if dim is None:
        dims = _ALL_DIMS[n]
    elif type(dim) is int and -n <= dim < n:
        dims = (dim + n if dim < 0 else dim,)
    else:
        return None
    if keepdim is not False and keepdim is not True:
        return None
    try:
        res = _quiet_run(_add_reduce, x, dims, None, None, keepdim)
        if op is MEAN:  # sum / n, as _np_mean: 0 / 0 is nan for an empty slice
            count = 1
            for d in dims:
                count *= x.shape[d]
            res = _quiet_run(np.true_divide, res, count)
    except RuntimeError:  # OnDevice (the general path hands a CUDA tensor over) or a busy quiet context
        return None
    if type(res) is not np.ndarray:
        res = np.asarray(res)
    elif res.ndim > 1 and not res.flags.c_contiguous:
        res = np.ascontiguousarray(res)  # torch allocates reduction outputs row-major
    r = _make_tensor(res, input.dtype)
    if input._requires_grad and _grad_state["enabled"]:
        attrs = {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None}
        if op is SUM:
            attrs["dtype"] = None
        _dispatch._record_grad(op, (input,), attrs, (r,))
    return r


def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    """Sum over `dim` (all dims by default); integer and bool inputs sum in int64."""
    if dim is None and dtype is None and out is None and keepdim is False and _TRACER[0] is None \
            and isinstance(input, Tensor):
        npdt = _SUM_FAST.get(input.dtype)
        if npdt is not None:
            x = input._data
            o = _empty((), npdt)  # a 0-d array to reduce into (a NumPy scalar would need wrapping)
            try:
                _quiet_run(_add_reduce, x, None, None, o)  # (axis None: every dim, as _ALL_DIMS[ndim] says)
            except RuntimeError:
                o = None  # OnDevice (the general path runs a CUDA tensor on the device) or a busy context
        if npdt is not None and o is not None:
            r = _make_tensor(o, input.dtype)
            if input._requires_grad and _grad_state["enabled"]:
                _dispatch._record_grad(SUM, (input,), _SUM_ALL_ATTRS[x.ndim], (r,))
            return r
    if dtype is None and out is None and _TRACER[0] is None and isinstance(input, Tensor) \
            and input.dtype in _SUM_FAST:
        r = _fast_sum(SUM, input, dim, keepdim)
        if r is not None:
            return r
    if isinstance(dim, D.DType):
        dim, dtype = None, dim
    dims = _dims(input, dim)
    dt = _sum_dtype(input, dtype)
    r = apply(SUM, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None,
                              "dtype": dt if dt is not input.dtype else None}, dtype=dt)
    return _out(out, r)


def _np_nansum(x, dims, keepdim, explicit_dim=False, dtype=None):
    if x.dtype.kind == "f":
        x = np.where(np.isnan(x), 0, _acc(x))
    return _np_sum(x, dims, keepdim, dtype=dtype)


def _vjp_nansum(ctx, saved, g):
    from .pointwise import isnan, logical_not

    (x,) = saved
    return (_unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim) * logical_not(isnan(x)),)


NANSUM = defop("nansum", "reduce", _np_nansum, vjp=_vjp_nansum, save=(0,), grad_name="NansumBackward0")


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """Sum treating NaN as zero (its gradient is zero at the NaNs)."""
    dims = _dims(input, dim)
    dt = _sum_dtype(input, dtype)
    return apply(NANSUM, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None,
                                    "dtype": dt if dt is not input.dtype else None}, dtype=dt)


def mean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    if dtype is None and out is None and _TRACER[0] is None and isinstance(input, Tensor) \
            and input.dtype in _SUM_FAST:
        r = _fast_sum(MEAN, input, dim, keepdim)
        if r is not None:
            return r
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


def prod(input, dim=None, keepdim=False, *, dtype=None, out=None):
    if dim is not None and not isinstance(dim, int):
        raise TypeError(f"prod(): argument 'dim' must be int, not {type(dim).__name__}")
    dims = _dims(input, dim)
    dt = _sum_dtype(input, dtype)
    return _out(out, apply(PROD, (input,), {"dims": dims, "keepdim": keepdim, "explicit_dim": dim is not None,
                                            "dtype": dt if dt is not input.dtype else None}, dtype=dt))


# ---- max / min --------------------------------------------------------------------
def _np_amax(x, dims, keepdim, is_max=True, explicit_dim=False):
    return (np.maximum if is_max else np.minimum).reduce(x, axis=dims, keepdims=keepdim)


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
    return (scatter(zeros(shape, dtype=g.dtype, device=g.device), dim, idx, g),)


MAX_DIM = defop("max_dim", "reduce", _np_max_dim, vjp=_vjp_max_dim, save=("out1",), nout=2,
                grad_name=lambda a: ("Max" if a["is_max"] else "Min") + "Backward0",
                dtype=lambda args, attrs: (args[0].dtype, D.int64))


def _no_identity(name: str, input, dims, shown=None) -> None:
    """max/min/argmax have no value for an empty reduction: torch's errors.
    `shown` maps each reduced dim to the number torch prints (amax prints dims as given)."""
    if dims is None:  # everything
        if input.numel() == 0:
            if name.startswith("arg"):
                raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
                               "the reduction dim with the 'dim' argument.")
        return
    for i, d in enumerate(dims):
        if input.ndim and input.shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d if shown is None else shown[i]} to have "
                             "non-zero size.")


def _max_min(input, dim, keepdim, is_max, other, out=None):
    name = "max" if is_max else "min"
    if isinstance(dim, Tensor):  # torch.max(a, b) is maximum
        other, dim = dim, None
    if other is not None:
        from .pointwise import maximum, minimum

        return (maximum if is_max else minimum)(input, other, out=out)
    if dim is None:
        _no_identity(name, input, None)
        return _out(out, apply(AMAX, (input,), {"dims": tuple(range(input.ndim)), "keepdim": False,
                                                "is_max": is_max}))
    d = wrap_dim(dim, input.ndim)
    _no_identity(name, input, (d,))
    vals, idx = apply(MAX_DIM, (input,), {"dim": d, "keepdim": keepdim, "is_max": is_max})
    if out is not None:
        from .inplace import write_out

        vals, idx = write_out(out[0], vals), write_out(out[1], idx)
    rt = return_types.max if is_max else return_types.min
    return rt(vals, idx)


def max(input, dim=None, keepdim=False, *, out=None, other=None):
    return _max_min(input, dim, keepdim, True, other, out)


def min(input, dim=None, keepdim=False, *, out=None, other=None):
    return _max_min(input, dim, keepdim, False, other, out)


def _amax(name, input, dim, keepdim, is_max, out):
    dims = _dims(input, dim)
    if dim is None or dim == ():
        _no_identity(name, input, None)
    else:
        given = (dim,) if isinstance(dim, int) else tuple(dim)
        _no_identity(name, input, dims, shown=dict(zip(range(len(dims)), (g for _, g in sorted(
            zip((wrap_dim(g, input.ndim) for g in given), given))))))
    return _out(out, apply(AMAX, (input,), {"dims": dims, "keepdim": keepdim, "is_max": is_max,
                                            "explicit_dim": True}))


def amax(input, dim=(), keepdim=False, *, out=None):
    return _amax("amax", input, dim, keepdim, True, out)


def amin(input, dim=(), keepdim=False, *, out=None):
    return _amax("amin", input, dim, keepdim, False, out)


def _np_argmax(x, dim, keepdim, is_max=True):
    f = np.argmax if is_max else np.argmin
    if dim is None:
        r = np.asarray(f(x.reshape(-1)))
        return r.reshape((1,) * x.ndim) if keepdim else r
    return f(x, axis=dim, keepdims=keepdim)


ARGMAX = defop("argmax", "reduce", _np_argmax, dtype=lambda a, k: D.int64)


def _argmax(name, input, dim, keepdim, is_max, out):
    if input.dtype is D.bool_:
        raise RuntimeError(f"{name}(): does not support bool input")
    d = None if dim is None else wrap_dim(dim, input.ndim)
    _no_identity(name, input, None if d is None else (d,))
    if d is not None and input.ndim == 0:
        d = None
    return _out(out, apply(ARGMAX, (input,), {"dim": d, "keepdim": keepdim, "is_max": is_max}))


def argmax(input, dim=None, keepdim=False, *, out=None):
    return _argmax("argmax", input, dim, keepdim, True, out)


def argmin(input, dim=None, keepdim=False, *, out=None):
    return _argmax("argmin", input, dim, keepdim, False, out)


# ---- var / std ------------------------------------------------------------------------
def _np_var(x, dims, keepdim, correction, sqrt=False):
    """Two passes (mean, then squared deviations), divided by max(0, n - correction) as torch does:
    no degrees of freedom gives nan (or inf), never a warning."""
    x = _acc(x)
    n = _count(x.shape, dims)
    d = x - np.add.reduce(x, axis=dims, keepdims=True) / n
    v = np.add.reduce(d * d, axis=dims, keepdims=keepdim) / builtins.max(0, n - correction)
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
        # torch's std_backward masks the gradient to 0 where std is 0 (a constant slice, or one
        # element with correction=0) instead of the 0 / 0 = NaN of the plain formula
        sd = _unreduce(out, ctx.shapes[0], dims, ctx.keepdim)
        gv = (gv / (2 * sd)).masked_fill(sd == 0, 0.0)
    dof = n - ctx.correction
    # no degrees of freedom: torch's 2 / 0 is inf (and the gradient NaN), not a Python error
    return (gv * (2.0 / dof if dof else float("inf")) * (x - mu),)


VAR = defop("var", "reduce", _np_var, vjp=_vjp_var, save=(0, "out"),
            grad_name=lambda a: "StdBackward0" if a["sqrt"] else "VarBackward0")


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased in (None, True) else 0


def _var(name, input, dim, unbiased, keepdim, correction, out):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    if not input.dtype.is_floating_point:
        raise RuntimeError("std and var only support floating point and complex dtypes")
    dims = _dims(input, dim)
    corr = _correction(unbiased, correction)
    if _count(input.shape, dims) - corr <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the "
                      "reduction factor (input numel divided by output numel).", UserWarning, stacklevel=3)
    return _out(out, apply(VAR, (input,), {"dims": dims, "keepdim": keepdim, "correction": corr,
                                           "sqrt": name == "std"}))


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    return _var("var", input, dim, unbiased, keepdim, correction, out)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    return _var("std", input, dim, unbiased, keepdim, correction, out)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return return_types.var_mean(var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return return_types.std_mean(std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


# ---- norm / logsumexp -------------------------------------------------------------------
def _np_norm(x, dims, keepdim, p):
    a = np.abs(_acc(x))
    if p == float("inf"):
        return np.maximum.reduce(a, axis=dims, keepdims=keepdim)
    if p == -float("inf"):
        return np.minimum.reduce(a, axis=dims, keepdims=keepdim)
    if p == 0:
        return np.add.reduce(a != 0, axis=dims, keepdims=keepdim).astype(a.dtype)
    if p == 2:
        return np.sqrt(np.add.reduce(a * a, axis=dims, keepdims=keepdim))
    if p == 1:
        return np.add.reduce(a, axis=dims, keepdims=keepdim)
    return np.add.reduce(a ** p, axis=dims, keepdims=keepdim) ** (1.0 / p)


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


def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """torch.norm: a vector norm over `dim` (all dims by default); "fro" is the 2-norm over at most 2 dims."""
    if p == "fro" and isinstance(dim, (tuple, list)) and len(dim) > 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
    if p == "fro" or p is None:
        p = 2
    if not input.dtype.is_floating_point:
        raise RuntimeError(
            f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {input.dtype.short}")
    if dtype is not None and dtype is not input.dtype:
        input = input.to(dtype)
    p = float(p)
    dims = _dims(input, dim)
    if p < 0 and input.numel() == 0:  # max/min-like norms have no identity
        ps = "inf" if p == float("inf") else "-inf" if p == -float("inf") else repr(p)
        if dim is None:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {ps} norm on an empty tensor because the "
                               "operation does not have an identity")
        for d in ((dim,) if isinstance(dim, int) else dim):
            if input.shape[wrap_dim(d, input.ndim)] == 0:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {ps} norm on the dimension {d}because "
                                   "this dimension is empty and the operation does not have an identity")
    if p == float("inf") and input.numel() == 0:
        _inf_norm_empty(input, dim)
    return _out(out, apply(NORM, (input,), {"dims": dims, "keepdim": keepdim, "p": p}))


def _inf_norm_empty(input, dim):
    if dim is None:
        raise RuntimeError("linalg.vector_norm cannot compute the inf norm on an empty tensor because the "
                           "operation does not have an identity")
    for d in ((dim,) if isinstance(dim, int) else dim):
        if input.shape[wrap_dim(d, input.ndim)] == 0:
            raise RuntimeError(f"linalg.vector_norm cannot compute the inf norm on the dimension {d}because "
                               "this dimension is empty and the operation does not have an identity")


def _np_logsumexp(x, dims, keepdim):
    x = _acc(x)
    if x.size == 0:
        return np.log(np.add.reduce(np.exp(x), axis=dims, keepdims=keepdim))
    m = np.maximum.reduce(x, axis=dims, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or an inf): shift by 0, as torch does
    r = np.log(np.add.reduce(np.exp(x - m), axis=dims, keepdims=True)) + m
    return r if keepdim else np.squeeze(r, axis=dims)


def _vjp_logsumexp(ctx, saved, g):
    from .pointwise import exp

    x, out = saved
    return (_unreduce(g, ctx.shapes[0], ctx.dims, ctx.keepdim) * exp(x - _unreduce(out, ctx.shapes[0], ctx.dims, ctx.keepdim)),)


LOGSUMEXP = defop("logsumexp", "reduce", _np_logsumexp, vjp=_vjp_logsumexp, save=(0, "out"),
                  dtype=lambda args, attrs: args[0].dtype if args[0].dtype.is_floating_point else D.get_default_dtype())


def logsumexp(input, dim, keepdim=False, *, out=None):
    if not input.dtype.is_floating_point:
        input = input.to(D.get_default_dtype())
    return _out(out, apply(LOGSUMEXP, (input,), {"dims": _dims(input, dim), "keepdim": keepdim}))


# ---- any / all / cumsum -------------------------------------------------------------------
def _logic_dtype(args, attrs):
    return D.uint8 if args[0].dtype is D.uint8 else D.bool_  # uint8 in, uint8 out (torch's legacy rule)


ANY = defop("any", "reduce", lambda x, dims, keepdim: np.any(x, axis=dims, keepdims=keepdim), dtype=_logic_dtype)
ALL = defop("all", "reduce", lambda x, dims, keepdim: np.all(x, axis=dims, keepdims=keepdim), dtype=_logic_dtype)


def _logic_dims(input, dim):
    # an explicit empty tuple reduces nothing here (unlike sum)
    return () if isinstance(dim, (tuple, list)) and not dim else _dims(input, dim)


def any(input, dim=None, keepdim=False, *, out=None):
    return _out(out, apply(ANY, (input,), {"dims": _logic_dims(input, dim), "keepdim": keepdim}))


def all(input, dim=None, keepdim=False, *, out=None):
    return _out(out, apply(ALL, (input,), {"dims": _logic_dims(input, dim), "keepdim": keepdim}))


def _vjp_cumsum(ctx, saved, g):
    d = ctx.dim
    return (g.flip(d).cumsum(d).flip(d),)


def _np_cumsum(x, dim, dtype=None):
    if x.ndim == 0:
        x = x.reshape(1)
        return np.cumsum(_acc(x) if dtype is None else x, axis=0, dtype=None if dtype is None else
                         D.compute_np(dtype)).reshape(())
    return np.cumsum(_acc(x) if dtype is None else x, axis=dim, dtype=None if dtype is None else D.compute_np(dtype))


CUMSUM = defop("cumsum", "scan", _np_cumsum, vjp=_vjp_cumsum)


def cumsum(input, dim, *, dtype=None, out=None):
    d = wrap_dim(dim, input.ndim)
    dt = _sum_dtype(input, dtype)
    return _out(out, apply(CUMSUM, (input,), {"dim": d, "dtype": dt if dt is not input.dtype else None}, dtype=dt))


def _vjp_cumprod(ctx, saved, g):
    """out_k = x_0 * ... * x_k, so grad_i = sum over k >= i of g_k * (product of x_j, j <= k, j != i).

    Split each row at z, the position of its first zero (z = n when there is none):
      i < z   x_i != 0, so the product is out_k / x_i: grad_i = revcumsum(g * out)_i / x_i
      i = z   the product is c_k = cumprod of x with that zero replaced by 1: revcumsum(g * c)_z
      i > z   every product holds x_z = 0: grad_i = 0
    O(n) and exact with zeros. Under create_graph the table formula runs instead: the split at z
    is right in value but not in its derivative (grad_i for i > z depends on x_z)."""
    from .pointwise import where

    x, out = saved
    d = ctx.dim
    n = x.shape[d] if x.ndim else 1
    if n <= 1 or x.ndim == 0:
        return (g,)
    from ..autograd import grad_mode

    if grad_mode._state["enabled"]:  # create_graph: the formula above is piecewise in x, so not its derivative
        return (_cumprod_grad_table(x, g, d),)
    zero = x == 0
    seen = zero.cumsum(d)  # zeros at or before each position
    before, first = seen == 0, zero & (seen == 1)
    c = where(first, 1.0, x).cumprod(d)

    def revcumsum(t):
        return t.flip(d).cumsum(d).flip(d)

    at_first = where(first, revcumsum(g * c), 0.0)
    return (where(before, revcumsum(g * out) / where(before, x, 1.0), at_first),)


def _cumprod_grad_table(x, g, d):
    """The same gradient from an (n, n) table per row, products with x_i left out computed directly
    (its diagonal is 1): O(n^2) memory, but smooth in x, so that it differentiates again."""
    from ..creation import arange
    from .pointwise import where

    n = x.shape[d]
    xm, gm = x.movedim(d, -1), g.movedim(d, -1)
    i = arange(n, device=x.device).unsqueeze(1)
    k = arange(n, device=x.device).unsqueeze(0)
    table = where(i == k, 1.0, xm.unsqueeze(-2).expand(tuple(xm.shape[:-1]) + (n, n)))
    partial = table.cumprod(-1)  # [.., i, k] = prod of x_j for j <= k, j != i
    return (where(k >= i, partial, 0.0) * gm.unsqueeze(-2)).sum(-1).movedim(-1, d)


def _np_cumprod(x, dim, dtype=None):
    x = _acc(x) if dtype is None else x.astype(D.compute_np(dtype))
    return np.cumprod(x.reshape(1), axis=0).reshape(()) if x.ndim == 0 else np.cumprod(x, axis=dim)


CUMPROD = defop("cumprod", "scan", _np_cumprod, vjp=_vjp_cumprod, save=(0, "out"))


def cumprod(input, dim, *, dtype=None, out=None):
    d = wrap_dim(dim, input.ndim)
    dt = _sum_dtype(input, dtype)
    return _out(out, apply(CUMPROD, (input,), {"dim": d, "dtype": dt if dt is not input.dtype else None}, dtype=dt))


