"""Linear algebra: one matmul primitive (batched, broadcasting) and the user-facing forms.

`mm`, `bmm`, `mv`, `dot` and `matmul` check shapes with torch's messages and then
run the same primitive; their grad_fn names follow torch (MmBackward0, ...)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..dispatch import apply
from .shape_util import broadcast_shapes, sum_to
from .table import defop
from ..autograd.record import save_if, record as _record_grad
from ..autograd.grad_mode import _state as _grad_state
from ..dispatch import TRACER as _TRACER, quiet_run as _quiet_run
from ..tensor import Tensor
from .inplace import with_out as _out


def _vjp_matmul(ctx, saved, g):
    """Gradients of a @ b for every form the primitive runs: dot, mv, vector @ matrix, mm and
    batched (broadcast batch dims are summed back with sum_to)."""
    a, b = saved  # a is kept only when b needs a gradient, and b when a does (MATMUL.save)
    ga = gb = None
    da, db = len(ctx.shapes[0]), len(ctx.shapes[1])
    if da == 1 and db == 1:  # dot: g is 0-d
        ga = g * b if ctx.needs[0] else None
        gb = g * a if ctx.needs[1] else None
    elif db == 1:  # (.., n, k) @ (k,) -> (.., n)
        if ctx.needs[0]:
            ga = sum_to(g.unsqueeze(-1) * b, ctx.shapes[0])
        if ctx.needs[1]:
            gb = sum_to((a.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1), ctx.shapes[1])
    elif da == 1:  # (k,) @ (.., k, p) -> (.., p)
        if ctx.needs[0]:
            ga = sum_to((b @ g.unsqueeze(-1)).squeeze(-1), ctx.shapes[0])
        if ctx.needs[1]:
            gb = sum_to(a.unsqueeze(-1) * g.unsqueeze(-2), ctx.shapes[1])
    else:
        if ctx.needs[0]:
            ga = sum_to(g @ b.transpose(-1, -2), ctx.shapes[0])
        if ctx.needs[1]:
            gb = sum_to(a.transpose(-1, -2) @ g, ctx.shapes[1])
    return ga, gb


def _np_matmul(a, b):
    if a.ndim == 2 and b.ndim == 2:
        return a.dot(b)  # the same BLAS call as np.matmul for matrices, at half its fixed cost
    return np.matmul(a, b)


MATMUL = defop("matmul", "linalg", _np_matmul, cast_inputs=True, vjp=_vjp_matmul, save=save_if((0, (1,)), (1, (0,))),
               dtype=lambda args, attrs: args[0].dtype,
               grad_name=lambda a: a.get("name", "MmBackward0"), lowering="matmul")


def _check_dtypes(a, b, what):
    if a.dtype is not b.dtype:
        raise RuntimeError(f"{what} expected both inputs to have same dtype, but got {a.dtype.short} != {b.dtype.short}" if what != "mm" else
                           f"expected m1 and m2 to have the same dtype, but got: {_tn(a.dtype)} != {_tn(b.dtype)}")


def _tn(dt):
    return {"float32": "float", "float64": "double", "int64": "long int", "int32": "int", "float16": "c10::Half",
            "bfloat16": "c10::BFloat16"}.get(dt.name, dt.name)


# the CPU kernel torch names when it has no version for a dtype (bool), per matmul form
_KERNEL = {"MmBackward0": "addmm_impl_cpu_", "BmmBackward0": "bmm", "MvBackward0": "addmv_impl_cpu",
           "DotBackward0": "dot"}


def _mm_apply(a, b, name):
    if a.dtype is D.bool_ and a.numel() and b.numel():  # (empty products never reach a kernel)
        raise NotImplementedError(f'"{_KERNEL[name]}" not implemented for \'Bool\'')
    return apply(MATMUL, (a, b), {"name": name})


# `x @ w` of two float matrices, the op of every Linear layer, skips the general path's checks and
# apply(); the attrs dict is shared by the nodes it records, so nothing may write to it.
_MM_ATTRS = {"name": "MmBackward0"}
_MM_FAST = (D.float32, D.float64)
_make_tensor = Tensor._make


def _mm_fast(a, b):
    """a @ b for two float32 (or float64) matrices that fit, or None for the checked path."""
    if _TRACER[0] is not None or type(b) is not type(a) and not isinstance(b, Tensor):
        return None
    x, y = a._data, b._data
    dt = a.dtype
    if x.ndim != 2 or y.ndim != 2 or dt is not b.dtype or dt not in _MM_FAST or x.shape[1] != y.shape[0]:
        return None
    try:
        res = _quiet_run(x.dot, y)
    except RuntimeError:  # OnDevice (the checked path hands CUDA tensors to the device) or a busy context
        return None
    r = _make_tensor(res, dt)
    if (a._requires_grad or b._requires_grad) and _grad_state["enabled"]:
        _record_grad(MATMUL, (a, b), _MM_ATTRS, (r,))
    return r


def mm(input, mat2, *, out=None):
    if out is None and isinstance(input, Tensor):
        r = _mm_fast(input, mat2)
        if r is not None:
            return r
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
    _check_bmm_dtypes(input, mat2)
    return _out(out, _mm_apply(input, mat2, "BmmBackward0"))


def _check_bmm_dtypes(a, b):
    if a.dtype is not b.dtype:  # (bmm's own words, not mm's)
        raise RuntimeError(f"expected scalar type {a.dtype.short} but found {b.dtype.short}")


def mv(input, vec, *, out=None):
    # torch computes mv as addmv into a result of vec's dtype: its messages count and name that too
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {input.ndim}, {vec.ndim}")
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(
            f"size mismatch, got input ({input.shape[0]}), mat ({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})")
    if input.dtype is not vec.dtype:
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {vec.dtype.short}, "
                           f"{input.dtype.short}, and {vec.dtype.short}")
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
    if out is None and isinstance(input, Tensor):
        r = _mm_fast(input, other)
        if r is not None:
            return r
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
        from .movement import SQUEEZE

        # torch squeezes in place here, which names the node SqueezeBackward4
        r = mm(input.unsqueeze(0), other)
        return _out(out, apply(SQUEEZE, (r,), {"dims": (0,), "explicit": 4}))
    if da == 2 and db == 2:
        return mm(input, other, out=out)
    # batched
    ka = input.shape[-1]
    kb = other.shape[-2] if db > 1 else other.shape[0]
    batch_a = input.shape[:-2] if da > 1 else ()
    batch_b = other.shape[:-2] if db > 1 else ()
    batch = broadcast_shapes(batch_a, batch_b)  # (torch reports batch mismatches first)
    if ka != kb:
        if da >= 3 and db <= 2:  # torch folds the batch into the rows of one mm / mv
            rows = _prod(input.shape[:-1])
            if db == 1:
                raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{ka}), vec ({kb})")
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{ka} and {kb}x{other.shape[-1]})")
        nb = _prod(batch)
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{nb}, {ka}] but got: "
                           f"[{nb}, {kb}].")
    if _should_fold(input, other, out is not None):  # (mm or mv then checks the dtypes, in its words)
        return _out(out, _folded(input, other))
    _check_bmm_dtypes(input, other)
    # batched: broadcast the batch dims, flatten them into one, bmm, view back (as torch does)
    from .movement import UNSAFE_VIEW

    n = input.shape[-2] if da > 1 else 1
    p = other.shape[-1] if db > 1 else 1
    a = input if da > 1 else input.unsqueeze(0)
    b = other if db > 1 else other.unsqueeze(-1)
    nb = _prod(batch)
    a3 = a.expand(tuple(batch) + (n, ka)).reshape(nb, n, ka)
    b3 = b.expand(tuple(batch) + (kb, p)).reshape(nb, kb, p)
    r = _mm_apply(a3, b3, "BmmBackward0")
    shape = tuple(batch) + ((n,) if da > 1 else ()) + ((p,) if db > 1 else ())
    return _out(out, apply(UNSAFE_VIEW, (r,), {"shape": shape}))


def _should_fold(t1, t2, has_out: bool) -> bool:
    """torch's rule for computing a batched matmul as one mm/mv on a folded matrix: when the
    larger operand is >= 3-D, the other <= 2-D, and folding needs no copy (or saves one in backward)."""
    larger = t1.ndim >= t2.ndim
    big = t1 if larger else t2.transpose(-1, -2)
    small_dim = t2.ndim if larger else t1.ndim
    if not (big.ndim >= 3 and small_dim <= 2):
        return False
    small_requires_grad = t2.requires_grad if larger else t1.requires_grad
    if small_requires_grad and not has_out:
        return True
    if t1.ndim == 2:
        return False
    if big.numel() == 0:
        return True
    shape, strides = big.shape, big.stride()
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(big.ndim - 2))


def _folded(t1, t2):
    """The folded form: (.., n, k) -> (N, k) @ matrix or vector, then viewed back to (.., n[, p])."""
    from .movement import UNSAFE_VIEW

    transpose = t2.ndim > t1.ndim
    if transpose:  # vector/matrix @ batch: fold the batch's transpose instead
        t1, t2 = t2.transpose(-1, -2), (t1.t() if t1.ndim == 2 else t1)
    out_shape = tuple(t1.shape[:-1])
    folded = t1.reshape(_prod(t1.shape[:-1]), t1.shape[-1])  # (not -1: that cannot be inferred when k == 0)
    if t2.ndim == 2:
        out_shape = out_shape + (t2.shape[1],)
        r = apply(UNSAFE_VIEW, (mm(folded, t2),), {"shape": out_shape})
        return r.transpose(-1, -2).contiguous() if transpose else r
    return apply(UNSAFE_VIEW, (mv(folded, t2),), {"shape": out_shape})


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


def outer(input, vec2):
    for name, v in (("self", input), ("vec2", vec2)):
        if v.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {v.ndim}-D")
    return input.reshape(-1, 1) * vec2


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    """beta * input + alpha * (mat1 @ mat2), one node (AddmmBackward0), as nn.Linear uses it."""
    if mat1.ndim != 2:
        raise RuntimeError("mat1 must be a matrix, got {}-D tensor".format(mat1.ndim))
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix, got {}-D tensor".format(mat2.ndim))
    if mat1.shape[1] != mat2.shape[0]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({mat1.shape[0]}x{mat1.shape[1]} and "
            f"{mat2.shape[0]}x{mat2.shape[1]})")
    _check_dtypes(mat1, mat2, "mm")
    shape = (mat1.shape[0], mat2.shape[1])
    try:
        fits = tuple(broadcast_shapes(tuple(input.shape), shape)) == shape
    except RuntimeError:
        fits = False
    if not fits:  # torch expands the bias to the product's shape: its expand error
        from .movement import expand

        expand(input, shape)
    if input.dtype is not mat1.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_tn(input.dtype)} != "
                           f"{_tn(mat1.dtype)}")
    if mat1.dtype is D.bool_:
        raise NotImplementedError('"addmm_impl_cpu_" not implemented for \'Bool\'')
    from .nn_ops import ADDMM  # the primitive lives with Linear, its main user

    return _out(out, apply(ADDMM, (input, mat1, mat2), {"beta": beta, "alpha": alpha}))


def _einsum_differentiable(equation, operands):
    """einsum as diagonals, permutes, broadcast multiplies and a sum: all recorded ops, so the
    result has a gradient (and a double backward). Used only when an operand needs a gradient."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if len(operands) > len(terms) else
                           "einsum(): fewer operands were provided than specified in the equation")
    ell = max((o.dim() - len(t.replace("...", "")) for t, o in zip(terms, operands) if "..." in t), default=0)
    ell_labels = [chr(0x100 + k) for k in range(ell)]  # the broadcast dims, right-aligned

    def labels(term, nd):
        if "..." in term:
            a, _, b = term.partition("...")
            n = nd - len(a) - len(b)
            return list(a) + ell_labels[ell - n:] + list(b)
        return list(term)

    labs = [labels(t, o.dim()) for t, o in zip(terms, operands)]
    for lab, o in zip(labs, operands):
        if len(lab) != o.dim():
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(lab)}) does not match "
                               f"the number of dimensions ({o.dim()}) for operand {labs.index(lab)}"
                               + ("" if "..." in eq else " and no ellipsis was given"))
    if arrow:
        out = labels(rhs, len(rhs.replace("...", "")) + ell) if "..." in rhs else list(rhs)
    else:  # implicit output: the broadcast dims, then the labels used once, in alphabetical order
        flat = [c for lab in labs for c in lab if c not in ell_labels]
        out = ell_labels + sorted(c for c in set(flat) if flat.count(c) == 1)
    used = {c for lab in labs for c in lab}
    for k, c in enumerate(out):
        if c not in used:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any input operand")
        if c in out[:k]:
            raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    seen = {}
    for n, (lab, o) in enumerate(zip(labs, operands)):
        for c, size in zip(lab, o.shape):
            if c in seen and size != seen[c] and 1 not in (size, seen[c]):
                name = "..." if c in ell_labels else c
                raise RuntimeError(f"einsum(): subscript {name} has size {size} for operand {n} which does not "
                                   f"broadcast with previously seen size {seen[c]}")
            seen[c] = size if seen.get(c, 1) == 1 else seen[c]
    ops = []
    for lab, o in zip(labs, operands):
        lab = list(lab)
        while len(set(lab)) < len(lab):  # a repeated label: its diagonal (moved to the end)
            c = next(c for c in lab if lab.count(c) > 1)
            i = lab.index(c)
            j = lab.index(c, i + 1)
            o = o.diagonal(0, i, j)
            lab = [x for k, x in enumerate(lab) if k not in (i, j)] + [c]
        ops.append((lab, o))
    order = list(out) + [c for lab, _ in ops for c in lab if c not in out]
    order = list(dict.fromkeys(order))
    prod = None
    for lab, o in ops:
        present = [c for c in order if c in lab]
        o = o.permute(*[lab.index(c) for c in present]) if present != lab else o
        # a size-1 dim for every label this operand lacks, so the multiply lines them up
        shape = [o.shape[present.index(c)] if c in present else 1 for c in order]
        o = o.reshape(shape)
        prod = o if prod is None else prod * o
    red = [k for k in range(len(out), len(order))]
    r = prod.sum(red) if red else prod
    return r if r.dim() == len(out) else r.reshape([prod.shape[k] for k in range(len(out))])


def einsum(equation, *operands):
    """NumPy's einsum on values; with a gradient (composed of recorded ops) when an operand needs one."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    from ..creation import from_values

    dt = operands[0].dtype
    for o in operands[1:]:
        if o.dtype is not dt:
            raise RuntimeError(f"expected scalar type {dt.short} but found {o.dtype.short}")
    if dt is D.bool_:
        raise NotImplementedError('"bmm" not implemented for \'Bool\'')
    if _grad_state["enabled"] and any(o._requires_grad for o in operands):
        return _einsum_differentiable(equation, operands)
    # float16 sums in float32 (as torch's kernels do); the result is row-major like torch's
    vals = [o._values().astype(np.float32) if dt is D.float16 else o._values() for o in operands]
    try:
        r = np.einsum(equation, *vals)
    except ValueError:  # NumPy does not broadcast size-1 labelled dims (torch does) nor word torch's errors
        return _einsum_differentiable(equation, operands)
    return from_values(np.ascontiguousarray(r) if np.ndim(r) else np.asarray(r), dt)
