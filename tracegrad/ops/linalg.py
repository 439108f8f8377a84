"""Linear algebra: one matmul primitive (batched, broadcasting) and the user-facing forms.

`mm`, `bmm`, `mv`, `dot` and `matmul` check shapes with torch's messages and then
run the same primitive; their grad_fn names follow torch (MmBackward0, ...)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..dispatch import apply
from .shape_util import broadcast_shapes, sum_to
from .table import defop


def _vjp_matmul(ctx, saved, g):
    a, b = saved
    ga = gb = None
    if ctx.needs[0]:
        ga = g @ b.transpose(-1, -2) if b.ndim > 1 else _outer_grad(g, b)
        ga = sum_to(ga, ctx.shapes[0])
    if ctx.needs[1]:
        gb = a.transpose(-1, -2) @ g
        gb = sum_to(gb, ctx.shapes[1])
    return ga, gb


def _outer_grad(g, b):
    # a (.., n, k) @ b (k,) -> g (.., n); grad a = g[..., None] * b
    return g.unsqueeze(-1) * b


def _np_matmul(a, b):
    return np.matmul(a, b)


MATMUL = defop("matmul", "linalg", _np_matmul, cast_inputs=True, vjp=_vjp_matmul, save=(0, 1),
               dtype=lambda args, attrs: args[0].dtype,
               grad_name=lambda a: a.get("name", "MmBackward0"), lowering="matmul")


def _check_dtypes(a, b, what):
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{what} expected both inputs to have same dtype, but got {a.dtype.short} != {b.dtype.short}" if what != "mm" else
                           f"expected m1 and m2 to have the same dtype, but got: {_tn(a.dtype)} != {_tn(b.dtype)}")


def _tn(dt):
    return {"float32": "float", "float64": "double", "int64": "long int", "int32": "int", "float16": "c10::Half",
            "bfloat16": "c10::BFloat16"}.get(dt.name, dt.name)


def _mm_apply(a, b, name):
    return apply(MATMUL, (a, b), {"name": name})


def mm(input, mat2, *, out=None):
    if input.ndim != 2:
        raise RuntimeError(f"self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x{input.shape[1]} and "
            f"{mat2.shape[0]}x{mat2.shape[1]})")
    _check_dtypes(input, mat2, "mm")
    return _out(out, _mm_apply(input, mat2, "MmBackward0"))


def bmm(input, mat2, *, out=None):
    if input.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError(f"batch2 must be a 3D tensor")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{input.shape[0]}, {input.shape[2]}] "
            f"but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    _check_dtypes(input, mat2, "mm")
    return _out(out, _mm_apply(input, mat2, "BmmBackward0"))


def mv(input, vec, *, out=None):
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {vec.ndim}")
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(
            f"size mismatch, got input ({input.shape[0]}), mat ({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})")
    _check_dtypes(input, vec, "mm")
    return _out(out, _mm_apply(input, vec, "MvBackward0"))


def dot(input, other, *, out=None):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(
            f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape[0] != other.shape[0]:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src [{other.shape[0]}] to have the "
            f"same number of elements, but got {input.shape[0]} and {other.shape[0]} elements respectively")
    if input.dtype is not other.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {input.dtype.short} and {other.dtype.short}")
    return _out(out, _mm_apply(input, other, "DotBackward0"))


inner = dot


def matmul(input, other, *, out=None):
    """torch.matmul: 1-D operands are promoted and squeezed back; batch dims broadcast."""
    da, db = input.ndim, other.ndim
    if da == 0 or db == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D")
    if da == 1 and db == 1:
        return dot(input, other, out=out)
    if da == 2 and db == 1:
        return mv(input, other, out=out)
    if da == 1 and db == 2:
        if input.shape[0] != other.shape[0]:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied (1x{input.shape[0]} and {other.shape[0]}x{other.shape[1]})")
        return _out(out, mm(input.unsqueeze(0), other).squeeze(0))
    if da == 2 and db == 2:
        return mm(input, other, out=out)
    # batched
    ka = input.shape[-1]
    kb = other.shape[-2] if db > 1 else other.shape[0]
    if ka != kb:
        if db == 1:
            raise RuntimeError(
                f"size mismatch, got input ({input.shape[-2]}), mat ({input.shape[-2]}x{ka}), vec ({kb})")
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: "
            f"[{_prod(input.shape[:-2]) if da > 2 else 1}, {ka}] but got: [{_prod(other.shape[:-2])}, {kb}].")
    batch_a = input.shape[:-2] if da > 1 else ()
    batch_b = other.shape[:-2] if db > 1 else ()
    broadcast_shapes(batch_a, batch_b)
    _check_dtypes(input, other, "mm")
    if da == 1:
        r = _mm_apply(input.unsqueeze(0), other, "MmBackward0").squeeze(-2)
    else:
        r = _mm_apply(input, other, "BmmBackward0" if db > 1 else "MvBackward0")
    return _out(out, r)


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


def outer(input, vec2):
    return input.unsqueeze(-1) * vec2


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    r = mm(mat1, mat2)
    if alpha != 1:
        r = r * alpha
    return r + (input if beta == 1 else input * beta)


def _out(out, r):
    if out is None:
        return r
    from .inplace import write_out

    return write_out(out, r)


def einsum(equation, *operands):
    """NumPy's einsum on values; no gradient (enough for inspection and tests)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    from ..creation import from_values

    dt = D.result_type(*operands)
    return from_values(np.einsum(equation, *(o._values() for o in operands)), dt)
