"""Type promotion against torch: promote_types and result_type for every pair of dtypes and every kind of
operand (dimensioned tensor, 0-d tensor, Python bool/int/float), arithmetic and comparison result dtypes,
in-place casting rules, reductions' dtypes, and the default dtype's part in all of it.
"""
from __future__ import annotations

import itertools

import pytest
import torch

import tracegrad
from util import DTYPES, check_op, dtype_name, make_pair, pair_from

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

SCALARS = [True, 3, -2, 2.5, 0.0]


def _operand(kind, dtype, rng):
    if kind == "dim":
        return make_pair((2,), dtype, "contig", rng)
    return make_pair((), dtype, "contig", rng)


@pytest.mark.parametrize("a,b", list(itertools.product(DTYPES, DTYPES)))
def test_promote_types(a, b):
    assert dtype_name(tracegrad.promote_types(getattr(tracegrad, a), getattr(tracegrad, b))) == \
        dtype_name(torch.promote_types(getattr(torch, a), getattr(torch, b)))
    assert tracegrad.can_cast(getattr(tracegrad, a), getattr(tracegrad, b)) == \
        torch.can_cast(getattr(torch, a), getattr(torch, b))


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("ka,kb", [("dim", "dim"), ("dim", "zero"), ("zero", "dim"), ("zero", "zero")])
def test_result_type_tensors(da, ka, kb, rng):
    for db in DTYPES:
        a, b = _operand(ka, da, rng), _operand(kb, db, rng)
        check_op("result_type", lambda L, x, y: L.result_type(x, y), [a, b])
        check_op("add dtype", lambda L, x, y: (x + y).dtype if x.dtype != L.bool or y.dtype != L.bool else None,
                 [a, b])


@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("kind", ["dim", "zero"])
def test_result_type_scalars(da, kind, rng):
    a = _operand(kind, da, rng)
    for s in SCALARS:
        check_op("result_type scalar", lambda L, x: L.result_type(x, s), [a], scalar=s)
        check_op("result_type scalar first", lambda L, x: L.result_type(s, x), [a], scalar=s)
        for op, fn in [("mul", lambda L, x: (x * s).dtype), ("div", lambda L, x: (x / (s or 1)).dtype),
                       ("floordiv", lambda L, x: (x // (s or 1)).dtype), ("lt", lambda L, x: (x < s).dtype),
                       ("pow", lambda L, x: (x ** abs(s)).dtype), ("rsub", lambda L, x: (s - x).dtype)]:
            check_op(op + " scalar dtype", fn, [a], scalar=s)


def test_spec_examples():
    """The examples SEMANTICS.md lists, each compared with torch."""
    cases = [
        lambda L: (L.ones(2, dtype=L.int32) + 5).dtype,
        lambda L: (L.ones(2, dtype=L.int32) + L.tensor(5)).dtype,
        lambda L: (L.ones(2, dtype=L.int64) + 1).dtype,
        lambda L: (L.ones(2, dtype=L.bool) + L.ones(2, dtype=L.uint8)).dtype,
        lambda L: (L.ones(2) + L.ones(2, dtype=L.float64)).dtype,
        lambda L: (L.ones(2, dtype=L.int64) + L.ones(2)).dtype,
        lambda L: (L.ones(2, dtype=L.int32) + 2.5).dtype,
        lambda L: (L.ones(2) + L.tensor(1.0, dtype=L.float64)).dtype,
        lambda L: L.add(5, 5) if False else (L.tensor(5) + 5).dtype,
        lambda L: (L.ones(2, dtype=L.int32) / L.ones(2, dtype=L.int32)).dtype,
        lambda L: (L.ones(2, dtype=L.int32) // 2).dtype,
        lambda L: (L.ones(2, dtype=L.float16) > 1).dtype,
        lambda L: L.ones(2, dtype=L.int8).sum().dtype, lambda L: L.ones(2, dtype=L.bool).sum().dtype,
        lambda L: L.ones(2, dtype=L.float16).sum().dtype, lambda L: L.ones(2, dtype=L.int32).prod().dtype,
        lambda L: L.ones(2, dtype=L.uint8).cumsum(0).dtype,
        lambda L: L.tensor([1, 2.0]).dtype, lambda L: L.tensor(1).dtype, lambda L: L.tensor(True).dtype,
        lambda L: L.tensor(1.5).dtype,
        lambda L: (L.ones(2, dtype=L.float16) + L.ones(2, dtype=L.bfloat16)).dtype,
        lambda L: (L.ones(2, dtype=L.uint8) + L.ones(2, dtype=L.int8)).dtype,
        lambda L: (L.ones(2, dtype=L.uint8) + L.tensor(-1)).dtype,
        lambda L: (L.tensor(1, dtype=L.int8) + L.tensor(1.0, dtype=L.float16)).dtype,
        lambda L: L.where(L.tensor([True]), L.ones(1, dtype=L.int8), 2.5).dtype,
        lambda L: L.cat([L.ones(1, dtype=L.int8), L.ones(1, dtype=L.float16)]).dtype,
        lambda L: L.stack([L.ones(1, dtype=L.bool), L.ones(1, dtype=L.int16)]).dtype,
        lambda L: L.ones(2).mean(dtype=L.float64).dtype,
        lambda L: L.ones(2, dtype=L.int64).float().dtype,
        lambda L: L.ones(2).to(L.int8).dtype, lambda L: L.ones(2).type(L.float64).dtype,
        lambda L: L.maximum(L.ones(1, dtype=L.int8), L.ones(1, dtype=L.float16)).dtype,
        lambda L: L.clamp(L.ones(2, dtype=L.int32), 0.5).dtype,
        lambda L: L.clamp(L.ones(2, dtype=L.int32), 0, 1).dtype,
        lambda L: L.abs(L.ones(2, dtype=L.int8)).dtype, lambda L: L.sqrt(L.ones(2, dtype=L.int8)).dtype,
        lambda L: L.sigmoid(L.ones(2, dtype=L.bool)).dtype, lambda L: L.exp(L.ones(2, dtype=L.float16)).dtype,
    ]
    for i, fn in enumerate(cases):
        check_op(f"case {i}", fn, [])


INPLACE = [("add_", 1.5), ("mul_", 2.5), ("sub_", True), ("div_", 2), ("add_", "float64"), ("mul_", "int64"),
           ("add_", "bool"), ("floor_divide_", 2), ("pow_", 0.5), ("copy_", "float64"), ("exp_", None),
           ("sqrt_", None), ("neg_", None), ("clamp_", 0.5), ("lt_", 0), ("eq_", "float64"), ("lerp_", "float32")]


@pytest.mark.parametrize("dtype", ["int32", "float16", "bool", "uint8", "float32", "bfloat16"])
@pytest.mark.parametrize("op,other", INPLACE)
def test_inplace_cannot_lower_category(op, other, dtype, rng):
    """In-place results may not need a higher category than the tensor has (float into an int tensor is an
    error); within a category the result is cast to the tensor's dtype. copy_ casts anything."""
    x = make_pair((3,), dtype, "contig", rng, "pos")
    args = []
    if isinstance(other, str):
        args = [make_pair((3,), other, "contig", rng, "pos")]
    elif other is not None:
        args = [other]

    def f(L, x, *rest):
        y = x.clone()
        r = getattr(y, op)(*rest) if op != "lerp_" else y.lerp_(*rest, 0.5)
        return r is y, y

    check_op(op, f, [x] + args, other=other)


@pytest.mark.parametrize("default", ["float64", "float16", "bfloat16"])
def test_default_dtype_in_promotion(default, rng):
    x = make_pair((2,), "int32", "contig", rng)

    def f(L, x):
        L.set_default_dtype(getattr(L, default))
        try:
            return (x + 1.5).dtype, (x / 2).dtype, L.result_type(x, 2.5), (L.tensor(True) * 0.5).dtype, \
                L.tensor([1.5]).dtype, (L.ones(1, dtype=L.float32) + 1.5).dtype, L.sqrt(x).dtype, \
                (L.tensor(2) ** -0.5).dtype
        finally:
            L.set_default_dtype(L.float32)

    check_op("default " + default, f, [x])
