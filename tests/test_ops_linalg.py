"""Linear algebra against torch: mm, matmul (every 1-d / 2-d / batched combination, batch broadcasting),
`@`, bmm, mv, dot, inner, outer, ger, addmm, einsum, t; float and integer dtypes, transposed and
sliced operands, out=, and torch's errors for shape and dtype mismatches.

float32 products may round differently from torch's BLAS; the DESIGN.md rule (no farther from a float64
reference than torch's own float32 result) decides those cases.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import torch

import tracegrad
from util import FLOATS, LAYOUTS, check_op, make_pair

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# name -> (fn(L, a, b), shape of a, shape of b)
CASES = {
    "mm": (lambda L, a, b: L.mm(a, b), (3, 4), (4, 5)),
    "mm_method": (lambda L, a, b: a.mm(b), (1, 4), (4, 1)),
    "matmul_2d": (lambda L, a, b: L.matmul(a, b), (3, 4), (4, 2)),
    "matmul_op": (lambda L, a, b: a @ b, (2, 3), (3, 2)),
    "matmul_1d_1d": (lambda L, a, b: a @ b, (4,), (4,)),
    "matmul_2d_1d": (lambda L, a, b: a @ b, (3, 4), (4,)),
    "matmul_1d_2d": (lambda L, a, b: a @ b, (4,), (4, 3)),
    "matmul_3d_3d": (lambda L, a, b: a @ b, (2, 3, 4), (2, 4, 5)),
    "matmul_3d_2d": (lambda L, a, b: a @ b, (2, 3, 4), (4, 5)),
    "matmul_2d_3d": (lambda L, a, b: a @ b, (3, 4), (2, 4, 5)),
    "matmul_3d_1d": (lambda L, a, b: L.matmul(a, b), (2, 3, 4), (4,)),
    "matmul_1d_3d": (lambda L, a, b: L.matmul(a, b), (4,), (2, 4, 5)),
    "matmul_broadcast_batch": (lambda L, a, b: a @ b, (2, 1, 3, 4), (5, 4, 2)),
    "matmul_broadcast_both": (lambda L, a, b: a @ b, (1, 3, 2, 4), (2, 1, 4, 3)),
    "matmul_4d_1d": (lambda L, a, b: a @ b, (2, 2, 3, 4), (4,)),
    "matmul_empty_k": (lambda L, a, b: a @ b, (3, 0), (0, 2)),
    "matmul_empty_batch": (lambda L, a, b: a @ b, (0, 3, 4), (4, 2)),
    "bmm": (lambda L, a, b: L.bmm(a, b), (2, 3, 4), (2, 4, 5)),
    "mv": (lambda L, a, b: L.mv(a, b), (3, 4), (4,)),
    "dot": (lambda L, a, b: L.dot(a, b), (5,), (5,)),
    "inner": (lambda L, a, b: L.inner(a, b), (5,), (5,)),
    "outer": (lambda L, a, b: L.outer(a, b), (3,), (4,)),
    "ger": (lambda L, a, b: a.ger(b), (2,), (3,)),
    "addmm": (lambda L, a, b: L.addmm(b[0], a, b), (3, 4), (4, 5)),
    "addmm_scaled": (lambda L, a, b: L.addmm(b[:1, :].t()[:1].t()[:1].expand(3, 5), a, b, beta=0.5, alpha=2),
                     (3, 4), (4, 5)),
    "einsum_mm": (lambda L, a, b: L.einsum("ij,jk->ik", a, b), (3, 4), (4, 5)),
    "einsum_batch": (lambda L, a, b: L.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 5)),
    "einsum_list": (lambda L, a, b: L.einsum("i,i->", [a, b]), (4,), (4,)),
    "t_then_mm": (lambda L, a, b: a.t() @ b.t(), (4, 3), (5, 4)),
    # mismatches: torch's errors
    "mm_mismatch": (lambda L, a, b: L.mm(a, b), (3, 4), (5, 2)),
    "matmul_mismatch": (lambda L, a, b: a @ b, (2, 3, 4), (3, 5)),
    "matmul_batch_mismatch": (lambda L, a, b: a @ b, (2, 3, 4), (3, 4, 5)),
    "matmul_0d": (lambda L, a, b: L.matmul(a, b), (), (3,)),
    "mv_mismatch": (lambda L, a, b: L.mv(a, b), (3, 4), (3,)),
    "dot_mismatch": (lambda L, a, b: L.dot(a, b), (3,), (4,)),
    "dot_2d": (lambda L, a, b: L.dot(a, b), (3, 1), (3,)),
    "bmm_2d": (lambda L, a, b: L.bmm(a, b), (3, 4), (4, 5)),
    "mm_1d": (lambda L, a, b: L.mm(a, b), (4,), (4, 5)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("op", list(CASES))
def test_linalg(op, dtype, rng, seed):
    if op == "inner" and dtype == "bool":
        # torch.inner of bool vectors fails in its dot kernel, except on expanded inputs, where tensordot takes
        # another path and succeeds; we always refuse, with torch's exception type
        with pytest.raises(RuntimeError):
            tracegrad.inner(tracegrad.tensor([True, False]), tracegrad.tensor([True, True]))
        with pytest.raises(RuntimeError):
            torch.inner(torch.tensor([True, False]), torch.tensor([True, True]))
        return
    fn, sa, sb = CASES[op]
    for la, lb in [("contig", "contig"), ("transposed", "transposed"), ("sliced", "offset"), ("expanded", "permuted")]:
        a = make_pair(sa, dtype, la, rng, "small")
        b = make_pair(sb, dtype, lb, rng, "small")
        check_op(op, fn, [a, b], seed=seed, layouts=(la, lb), strides="contiguous")


@pytest.mark.parametrize("da,db", [("float32", "float64"), ("int64", "float32"), ("float16", "float32"),
                                   ("int32", "int64"), ("bfloat16", "float16")])
@pytest.mark.parametrize("op", ["mm", "matmul_3d_2d", "matmul_1d_1d", "dot", "mv", "bmm", "outer"])
def test_mixed_dtypes_refused_or_promoted(op, da, db, rng, seed):
    """mm-like ops refuse mixed dtypes with torch's message; outer (a broadcast multiply) promotes."""
    fn, sa, sb = CASES[op]
    check_op(op, fn, [make_pair(sa, da, "contig", rng, "small"), make_pair(sb, db, "contig", rng, "small")],
             seed=seed, strides="contiguous")


@pytest.mark.parametrize("op", ["mm", "matmul_3d_3d", "matmul_2d_1d", "bmm", "mv", "dot"])
def test_out(op, rng, seed):
    fn, sa, sb = CASES[op]
    a = make_pair(sa, "float32", "contig", rng)
    b = make_pair(sb, "float32", "contig", rng)
    shape = tuple(fn(__import__("torch"), a[1], b[1]).shape)
    for out_shape in (shape, (0,)):
        out = make_pair(out_shape, "float32", "contig", rng)
        name = op.split("_")[0] if op != "matmul_3d_3d" and op != "matmul_2d_1d" else "matmul"
        check_op(op + " out=", lambda L, x, y, o: (getattr(L, name)(x, y, out=o) is o, o), [a, b, out], seed=seed)


# ---- random batched matmuls -------------------------------------------------------------------
@st.composite
def matmul_shapes(draw):
    m, k, n = draw(st.integers(0, 4)), draw(st.integers(0, 4)), draw(st.integers(0, 4))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
    ba = tuple(1 if draw(st.booleans()) else s for s in batch)[draw(st.integers(0, len(batch))):]
    bb = tuple(1 if draw(st.booleans()) else s for s in batch)[draw(st.integers(0, len(batch))):]
    sa = (k,) if draw(st.integers(0, 4)) == 0 else ba + (m, k)
    sb = (k,) if draw(st.integers(0, 4)) == 0 else bb + (k, n)
    return sa, sb


@given(shapes=matmul_shapes(), dtype=st.sampled_from(FLOATS + ["int64"]), la=st.sampled_from(sorted(LAYOUTS)),
       lb=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2 ** 31))
def test_matmul_random(shapes, dtype, la, lb, seed):
    rng = np.random.default_rng(seed)
    a = make_pair(shapes[0], dtype, la, rng, "small")
    b = make_pair(shapes[1], dtype, lb, rng, "small")
    check_op("matmul", lambda L, a, b: a @ b, [a, b], seed=seed, layouts=(la, lb), strides="contiguous")
