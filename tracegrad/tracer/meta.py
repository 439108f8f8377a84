"""Output metadata of one op, derived from the op's own NumPy implementation.

No op has a hand-written shape rule in the tracer. Each op kind is run on
stand-ins that cost nothing:

    view       the op's NumPy function runs on the input's stand-in array (fresh
               zero pages, never written): the result is a NumPy view of it, with
               exactly the shape, strides and offset eager mode gives.
    pointwise  the output shape is the broadcast of the inputs' shapes (that is what
               the kind means) and its memory order follows torch's rule for
               elementwise results; the NumPy function still runs, on one-element
               stand-ins, so an op that refuses its input dtypes raises here as it
               would eagerly.
    other      the NumPy function runs on the inputs' own stand-ins for floats (real
               strides, zero pages: a matmul runs at BLAS speed, and the result's layout
               is the one eager mode gets) and on zero-stride stand-ins of the full shape
               for integers and bools (indices and masks must be valid): reductions,
               matmul, indexing, movement, scans return arrays of the right shape.
               A constant's real values are used (a constant mask decides a size).

Stand-ins hold zeros; an op that refuses zeros (an integer divisor) gets ones. An op
whose output shape differs between zeros and ones depends on its inputs' values
(masked_select on a traced mask): that is reported as data-dependent.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..tensor import Tensor
from .graph import np_attrs


def _value_dtype(a: Tensor, compute, op) -> np.dtype:
    """The NumPy dtype `dispatch.apply` hands op.numpy for tensor `a`."""
    if compute is not None and a.dtype is not compute:
        return D.compute_np(compute)
    if a.dtype is D.bfloat16 and op.kind != "view":
        return np.dtype(np.float32)
    return a._data.dtype


def _is_const(a) -> bool:
    s = a._sym
    return s is not None and s.value is not None and s.value.kind == "const" and s.value.data is not None


def _const_values(a, compute, op):
    from ..dispatch import bf16_to_f32

    arr = a._data
    if a.dtype is D.bfloat16 and op.kind != "view":
        arr = bf16_to_f32(arr)
    want = _value_dtype(a, compute, op)
    return arr if arr.dtype == want else arr.astype(want)


def _fill(shape, dt, fill):
    base = np.full(1, fill, dtype=dt)
    return np.lib.stride_tricks.as_strided(base, tuple(shape), (0,) * len(shape))


def _run(op, args, attrs, compute, shrink: bool, fill, real: bool = False):
    vals = []
    for a in args:
        if isinstance(a, Tensor):
            if not shrink and _is_const(a):  # a constant's values are known: use them (a mask decides sizes)
                vals.append(_const_values(a, compute, op))
                continue
            if real and a.dtype.is_floating_point:
                # the stand-in itself: real strides (so the result is laid out as eager lays it out) and
                # contiguous memory, so matmul and conv run at BLAS speed on zero pages
                vals.append(_const_values(a, compute, op))
                continue
            shape = (1,) * a.ndim if shrink else a._data.shape
            vals.append(_fill(shape, _value_dtype(a, compute, op), fill))
        elif type(a) is list or type(a) is tuple:
            vals.append([_fill(x._data.shape, np.float32 if x.dtype is D.bfloat16 else x._data.dtype, fill)
                         if isinstance(x, Tensor) else x for x in a])
        else:
            vals.append(a)
    with np.errstate(all="ignore"):
        return op.numpy(*vals, **np_attrs(op, attrs))


def run_on_standins(op, args, attrs, compute, shrink: bool = False, real: bool = False):
    """op.numpy on stand-ins: zeros first, ones if the op refuses zeros."""
    try:
        return _run(op, args, attrs, compute, shrink, 0, real)
    except Exception as first:  # noqa: BLE001 - retried, then re-raised as is
        try:
            return _run(op, args, attrs, compute, shrink, 1)
        except Exception:  # noqa: BLE001
            raise first from None


def pointwise_layout(shape, tensors) -> tuple | None:
    """The strides torch gives an elementwise result (None: row-major)."""
    if len(shape) < 2:
        return None
    if all(t._data.flags.c_contiguous for t in tensors):
        return None
    try:
        from ..ops.shape_util import pointwise_strides
    except ImportError:  # pragma: no cover - older op library
        return None
    return pointwise_strides(shape, [(t._data.shape, t.stride()) for t in tensors])


def infer(op, args, attrs, dtype, compute):
    """Returns (kind, results): for views, the result arrays (views of the stand-ins);
    otherwise a list of (shape, strides-or-None) per output."""
    if op.kind == "random":  # running it would draw numbers (and move the generator) now
        return "array", [(tuple(attrs["shape"]), None)]
    if op.kind == "view":
        vals = [a._data if isinstance(a, Tensor) else a for a in args]
        res = op.numpy(*vals, **np_attrs(op, attrs))
        return "view", (res if op.nout != 1 else (res,))
    tensors = [a for a in args if isinstance(a, Tensor)]
    if op.kind == "pointwise":
        run_on_standins(op, args, attrs, compute, shrink=True)
        shape = np.broadcast_shapes(*[t._data.shape for t in tensors]) if tensors else ()
        numel = 1
        for s in shape:
            numel *= s
        strides = pointwise_layout(shape, tensors) if numel >= 2 else None
        return "array", [(tuple(shape), strides)]
    res = run_on_standins(op, args, attrs, compute, real=True)
    if op.nout == 1:
        res = (res,)
    shapes = [tuple(np.shape(r)) for r in res]
    strides = [_result_strides(r) for r in res]
    if any((t.dtype is D.bool_ or not t.dtype.is_floating_point) and not _is_const(t) for t in tensors):
        # a mask or an index may decide the output's size (masked_select): zeros and ones must agree
        try:
            other = _run(op, args, attrs, compute, False, 1)
        except Exception:  # noqa: BLE001 - ones are not valid for every op; zeros decided
            other = None
        if other is not None:
            other = (other,) if op.nout == 1 else other
            if [tuple(np.shape(r)) for r in other] != shapes:
                raise DataDependentShape(op.name)
    return "array", list(zip(shapes, strides))


def _result_strides(r) -> tuple | None:
    """The element strides of a result (None: row-major), as eager mode would keep them."""
    if type(r) is not np.ndarray or r.ndim < 2 or r.size < 2 or r.flags.c_contiguous:
        return None
    item = r.itemsize
    st = tuple(s // item for s in r.strides)
    if any(s <= 0 for s, n in zip(st, r.shape) if n > 1):
        return None
    return st


class DataDependentShape(Exception):
    """The op's output shape depends on the values of its inputs."""
