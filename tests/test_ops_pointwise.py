"""Pointwise ops against torch: unary, binary and ternary math, comparisons, logic, in-place and out=.

One table of ops drives every test: each op runs on every dtype and on
contiguous, transposed, permuted, step-sliced, offset and expanded inputs,
then on random shapes and broadcasts drawn by hypothesis. Where torch refuses
an input (say `neg` of a bool tensor) we must refuse it with the same exception type.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

import tracegrad
from util import (DTYPES, FLOATS, INTS, LAYOUTS, WRITABLE_LAYOUTS, check_op, describe, assert_same, make_pair,
                  run_both)

# ---- the tables --------------------------------------------------------------------------------
# name -> (fn(L, x), domain of the test data)
UNARY = {
    "neg": (lambda L, x: L.neg(x), "any"),
    "neg_op": (lambda L, x: -x, "any"),
    "negative": (lambda L, x: L.negative(x), "any"),
    "abs": (lambda L, x: L.abs(x), "any"),
    "abs_builtin": (lambda L, x: abs(x), "any"),
    "exp": (lambda L, x: L.exp(x), "any"),
    "exp2": (lambda L, x: L.exp2(x), "any"),
    "expm1": (lambda L, x: L.expm1(x), "any"),
    "log": (lambda L, x: L.log(x), "pos"),
    "log_neg": (lambda L, x: L.log(x), "any"),  # nan and -inf where torch has them
    "log2": (lambda L, x: L.log2(x), "pos"),
    "log10": (lambda L, x: L.log10(x), "pos"),
    "log1p": (lambda L, x: L.log1p(x), "pos"),
    "sqrt": (lambda L, x: L.sqrt(x), "pos"),
    "rsqrt": (lambda L, x: L.rsqrt(x), "pos"),
    "sin": (lambda L, x: L.sin(x), "any"),
    "cos": (lambda L, x: L.cos(x), "any"),
    "tan": (lambda L, x: L.tan(x), "unit"),
    "asin": (lambda L, x: L.asin(x), "unit"),
    "acos": (lambda L, x: L.acos(x), "unit"),
    "atan": (lambda L, x: L.atan(x), "any"),
    "sinh": (lambda L, x: L.sinh(x), "any"),
    "cosh": (lambda L, x: L.cosh(x), "any"),
    "tanh": (lambda L, x: L.tanh(x), "any"),
    "sigmoid": (lambda L, x: L.sigmoid(x), "any"),
    "erf": (lambda L, x: L.erf(x), "any"),
    "relu": (lambda L, x: L.relu(x), "any"),
    "sign": (lambda L, x: L.sign(x), "any"),
    "floor": (lambda L, x: L.floor(x), "any"),
    "ceil": (lambda L, x: L.ceil(x), "any"),
    "trunc": (lambda L, x: L.trunc(x), "any"),
    "round": (lambda L, x: L.round(x), "any"),
    "round_half": (lambda L, x: L.round(x * 2) / 2 if x.dtype.is_floating_point else L.round(x), "any"),
    "round_decimals": (lambda L, x: L.round(x, decimals=1), "any"),
    "frac": (lambda L, x: L.frac(x), "any"),
    "reciprocal": (lambda L, x: L.reciprocal(x), "nonzero"),
    "square": (lambda L, x: L.square(x), "any"),
    "clamp": (lambda L, x: L.clamp(x, -1, 2), "any"),
    "clamp_min": (lambda L, x: L.clamp(x, min=0.5), "any"),
    "clamp_max": (lambda L, x: x.clamp(max=1), "any"),
    "clip": (lambda L, x: L.clip(x, 0, 1), "any"),
    "clamp_float_bounds_on_int": (lambda L, x: L.clamp(x, -1.5, 2.5), "any"),
    "logical_not": (lambda L, x: L.logical_not(x), "any"),
    "bitwise_not": (lambda L, x: L.bitwise_not(x), "any"),
    "invert_op": (lambda L, x: ~x, "any"),
    "isnan": (lambda L, x: L.isnan(x), "any"),
    "isinf": (lambda L, x: L.isinf(x), "any"),
    "isfinite": (lambda L, x: L.isfinite(x), "any"),
    "pow_scalar": (lambda L, x: L.pow(x, 2), "any"),
    "pow_half": (lambda L, x: x ** 0.5, "pos"),
    "pow_neg": (lambda L, x: x ** -1.0, "nonzero"),
    "rpow": (lambda L, x: 2 ** x, "small"),
    "rsub": (lambda L, x: 1 - x, "any"),
    "rdiv": (lambda L, x: 1 / x, "nonzero"),
    "method_exp": (lambda L, x: x.exp(), "any"),
    "method_sigmoid": (lambda L, x: x.sigmoid(), "any"),
}

# name -> (fn(L, a, b), domain of b)
BINARY = {
    "add": (lambda L, a, b: L.add(a, b), "any"),
    "add_alpha": (lambda L, a, b: L.add(a, b, alpha=2), "any"),
    "add_op": (lambda L, a, b: a + b, "any"),
    "sub": (lambda L, a, b: L.sub(a, b), "any"),
    "sub_alpha": (lambda L, a, b: a.sub(b, alpha=3), "any"),
    "sub_op": (lambda L, a, b: a - b, "any"),
    "mul": (lambda L, a, b: L.mul(a, b), "any"),
    "mul_op": (lambda L, a, b: a * b, "any"),
    "div": (lambda L, a, b: L.div(a, b), "nonzero"),
    "div_op": (lambda L, a, b: a / b, "nonzero"),
    "div_by_zero": (lambda L, a, b: a / (b * 0), "any"),  # inf/nan, or torch's integer error
    "true_divide": (lambda L, a, b: L.true_divide(a, b), "nonzero"),
    "div_floor": (lambda L, a, b: L.div(a, b, rounding_mode="floor"), "nonzero"),
    "div_trunc": (lambda L, a, b: L.div(a, b, rounding_mode="trunc"), "nonzero"),
    "floor_divide": (lambda L, a, b: L.floor_divide(a, b), "nonzero"),
    "floordiv_op": (lambda L, a, b: a // b, "nonzero"),
    "remainder": (lambda L, a, b: L.remainder(a, b), "nonzero"),
    "mod_op": (lambda L, a, b: a % b, "nonzero"),
    "fmod": (lambda L, a, b: L.fmod(a, b), "nonzero"),
    "pow": (lambda L, a, b: L.pow(L.abs(a) if a.dtype != L.bool else a, b), "small"),
    "pow_op": (lambda L, a, b: a.abs() ** b if a.dtype not in (L.bool, L.uint8) else a ** b, "small"),
    "maximum": (lambda L, a, b: L.maximum(a, b), "any"),
    "minimum": (lambda L, a, b: L.minimum(a, b), "any"),
    "max_binary": (lambda L, a, b: L.max(a, b), "any"),
    "min_binary": (lambda L, a, b: L.min(a, b), "any"),
    "atan2": (lambda L, a, b: L.atan2(a, b), "any"),
    "eq": (lambda L, a, b: L.eq(a, b), "any"),
    "ne": (lambda L, a, b: a != b, "any"),
    "lt": (lambda L, a, b: L.lt(a, b), "any"),
    "le": (lambda L, a, b: a <= b, "any"),
    "gt": (lambda L, a, b: a > b, "any"),
    "ge": (lambda L, a, b: L.ge(a, b), "any"),
    "eq_op": (lambda L, a, b: a == b, "any"),
    "logical_and": (lambda L, a, b: L.logical_and(a, b), "any"),
    "logical_or": (lambda L, a, b: L.logical_or(a, b), "any"),
    "logical_xor": (lambda L, a, b: L.logical_xor(a, b), "any"),
    "bitwise_and": (lambda L, a, b: a & b, "any"),
    "bitwise_or": (lambda L, a, b: a | b, "any"),
    "bitwise_xor": (lambda L, a, b: L.bitwise_xor(a, b), "any"),
    "clamp_tensors": (lambda L, a, b: L.clamp(a, min=b), "any"),
    "lerp_scalar": (lambda L, a, b: L.lerp(a, b, 0.25), "any"),
    "where_gt": (lambda L, a, b: L.where(a > b, a, b), "any"),
    "where_scalar": (lambda L, a, b: L.where(a > b, a, 0), "any"),
}

TERNARY = {
    "where": lambda L, c, a, b: L.where(c > 0, a, b),
    "where_method": lambda L, c, a, b: a.where(c > 0, b),
    "lerp": lambda L, a, b, w: L.lerp(a, b, w),
    "clamp_both": lambda L, x, lo, hi: L.clamp(x, lo, hi),
}

SCALARS = [2, -1, 0.5, True, 3.0, 0]

# torch never warns about inf - inf or overflow; a NumPy RuntimeWarning leaking out is a bug
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


# ---- unary --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary(op, dtype, rng, seed):
    fn, domain = UNARY[op]
    for layout in LAYOUTS:
        x = make_pair((3, 4, 2), dtype, layout, rng, domain)
        check_op(op, fn, [x], seed=seed, layout=layout)


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "abs", "neg", "floor", "relu",
                                "isnan", "sign", "round", "square", "reciprocal", "erf"])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 0, 3), (1, 1, 1), (2, 1, 3, 1, 2)])
def test_unary_shapes(op, shape, rng, seed):
    fn, domain = UNARY[op]
    for dtype in ("float32", "int64"):
        check_op(op, fn, [make_pair(shape, dtype, "contig", rng, domain)], seed=seed)


def test_special_values():
    """nan, inf, -0.0 and huge values go through every float op as they do in torch."""
    vals = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e30, -1e30, 1e-30, 0.5, -2.5, 88.0, -104.0]
    for dtype in FLOATS:
        import numpy as np

        arr = np.array(vals, dtype=np.float64)
        ours = tracegrad.tensor(arr, dtype=getattr(tracegrad, dtype))
        theirs = torch.tensor(arr, dtype=getattr(torch, dtype))
        for op, (fn, _) in UNARY.items():
            check_op(op, fn, [(ours, theirs)], values="special")


# ---- binary -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(BINARY))
def test_binary(op, dtype, rng, seed):
    fn, domain = BINARY[op]
    for la, lb in [("contig", "contig"), ("transposed", "sliced"), ("expanded", "offset"), ("permuted", "contig")]:
        a = make_pair((2, 3, 4), dtype, la, rng, "any")
        b = make_pair((2, 3, 4), dtype, lb, rng, domain)
        check_op(op, fn, [a, b], seed=seed, layouts=(la, lb))
    # broadcasting, both ways
    for sa, sb in [((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((2, 1, 4), (3, 1)), ((), (3,)), ((0, 3), (1, 3))]:
        a = make_pair(sa, dtype, "contig", rng, "any")
        b = make_pair(sb, dtype, "contig", rng, domain)
        check_op(op, fn, [a, b], seed=seed)


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_with_scalars(op, rng, seed):
    """tensor (op) Python scalar and scalar (op) tensor, for every scalar kind and several dtypes."""
    fn, _ = BINARY[op]
    for dtype in ("float32", "float16", "int32", "uint8", "bool", "int64"):
        a = make_pair((2, 3), dtype, "contig", rng, "any")
        for s in SCALARS:
            if op.startswith(("where", "clamp_tensors", "lerp")):
                continue
            if op in ("div", "div_op", "true_divide", "div_floor", "div_trunc", "floor_divide", "floordiv_op",
                      "remainder", "mod_op", "fmod", "rdiv") and not s:
                continue
            check_op(op, fn, [a, s], seed=seed, scalar=s)
            if op.endswith("_op") or op in ("ne", "le", "gt", "bitwise_and", "bitwise_or"):
                check_op(op + " reflected", fn, [s, a], seed=seed, scalar=s)


@pytest.mark.parametrize("op", ["add", "mul", "sub", "div", "eq", "lt", "maximum", "pow", "remainder",
                                "bitwise_and", "logical_or", "atan2", "floor_divide"])
def test_binary_dtype_pairs(op, rng, seed):
    """Every pair of dtypes (type promotion and the computation in the promoted type)."""
    fn, domain = BINARY[op]
    for da in DTYPES:
        for db in DTYPES:
            a = make_pair((4,), da, "contig", rng, "any")
            b = make_pair((4,), db, "contig", rng, domain)
            check_op(op, fn, [a, b], seed=seed)
            # 0-dim operands do not set the width of their category
            b0 = make_pair((), db, "contig", rng, domain)
            check_op(op, fn, [a, b0], seed=seed)


def test_integer_overflow_wraps():
    """Integer arithmetic wraps around as torch's does."""
    for dtype in ("int8", "uint8", "int16", "int32", "int64"):
        import numpy as np

        info = np.iinfo(dtype)
        arr = np.array([info.max, info.min, info.max - 1, 0], dtype=dtype)
        a = (tracegrad.tensor(arr), torch.tensor(arr))
        for op in ("add", "mul", "sub", "neg", "abs"):
            fn = BINARY[op][0] if op in BINARY else UNARY[op][0]
            args = [a, a] if op in BINARY else [a]
            check_op(op, fn, args)
        check_op("add_scalar", lambda L, x: x + 1, [a])


# ---- ternary --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", list(TERNARY))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int16"])
def test_ternary(op, dtype, rng, seed):
    fn = TERNARY[op]
    for shapes in [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), (4,)), ((), (2, 2), (1,)), ((2, 1, 3), (3,), ())]:
        layouts = ("contig", "transposed", "expanded")
        args = [make_pair(s, dtype, l, rng) for s, l in zip(shapes, layouts)]
        if op == "clamp_both":  # keep lo <= hi so the order of clamping is not at stake
            lo, hi = args[1], args[2]
            args[2] = (hi[0].abs() + 1, hi[1].abs() + 1) if dtype != "uint8" else hi
            args[1] = (-lo[0].abs(), -lo[1].abs())
        check_op(op, fn, args, seed=seed)


def test_where_mixed_dtypes(rng, seed):
    for da in DTYPES:
        for db in ("float32", "int64", "int8", "bool", "float64"):
            c = make_pair((3, 2), "bool", "contig", rng)
            a = make_pair((3, 2), da, "contig", rng)
            b = make_pair((2,), db, "contig", rng)
            check_op("where", lambda L, c, a, b: L.where(c, a, b), [c, a, b], seed=seed)
            check_op("where scalar", lambda L, c, a: L.where(c, a, 2.5), [c, a], seed=seed)
            check_op("where 0-dim", lambda L, c, a, b: L.where(c, a, b.sum()), [c, a, b], seed=seed)
    check_op("where scalars", lambda L, c: L.where(c, 1.0, 0), [make_pair((3,), "bool", "contig", rng)])


# ---- in-place forms ---------------------------------------------------------------------------------
INPLACE_UNARY = ["neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh",
                 "sigmoid", "relu", "sign", "floor", "ceil", "trunc", "round", "reciprocal", "square", "erf",
                 "exp2", "log2", "log10", "frac", "logical_not", "bitwise_not"]
INPLACE_BINARY = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow", "atan2",
                  "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "bitwise_and", "bitwise_or",
                  "bitwise_xor"]
_DOMAIN = {"log": "pos", "log1p": "pos", "sqrt": "pos", "rsqrt": "pos", "log2": "pos", "log10": "pos",
           "reciprocal": "nonzero", "div": "nonzero", "true_divide": "nonzero", "floor_divide": "nonzero",
           "remainder": "nonzero", "fmod": "nonzero", "tan": "unit", "pow": "small"}


def _check_inplace(name, fn, a, others, seed, layout):
    """x.op_(...) returns x itself, writes into x's storage (and so into its base), bumps _version."""
    ours_x, theirs_x = a[0].clone(), a[1].clone()
    ours_base, theirs_base = ours_x, theirs_x
    ours_x, theirs_x = LAYOUTS[layout](tuple(a[0].shape))[1](ours_x), LAYOUTS[layout](tuple(a[1].shape))[1](theirs_x)
    ctx = describe(name + "_", [ours_x] + [o[0] if isinstance(o, tuple) else o for o in others], seed,
                   layout=layout)

    def run(L, x, *rest):
        v = x._version
        r = fn(L, x, *rest)
        return r, x._version - v

    ours_args = [ours_x] + [o[0] if isinstance(o, tuple) else o for o in others]
    theirs_args = [theirs_x] + [o[1] if isinstance(o, tuple) else o for o in others]
    ours, theirs, texc = run_both(run, ours_args, theirs_args, ctx)
    if texc is not None:
        return
    assert ours[0] is ours_x, f"in-place op did not return self\n  {ctx}"
    assert ours[1] == theirs[1], f"_version bumped by {ours[1]}, torch by {theirs[1]}\n  {ctx}"
    assert_same(ours_x, theirs_x, ctx, strides=True)
    assert_same(ours_base, theirs_base, ctx + "\n  (the base after writing through the view)", strides=True)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "int32", "uint8", "bool"])
@pytest.mark.parametrize("op", INPLACE_UNARY)
def test_inplace_unary(op, dtype, rng, seed):
    for layout in ("contig", "transposed", "sliced"):
        base_shape, _ = LAYOUTS[layout]((3, 4))
        a = make_pair(base_shape, dtype, "contig", rng, _DOMAIN.get(op, "any"))
        _check_inplace(op, lambda L, x: getattr(x, op + "_")(), a, [], seed, layout)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int8", "bool"])
@pytest.mark.parametrize("op", INPLACE_BINARY)
def test_inplace_binary(op, dtype, rng, seed):
    for layout in ("contig", "transposed", "offset"):
        base_shape, _ = LAYOUTS[layout]((3, 4))
        a = make_pair(base_shape, dtype, "contig", rng, "any")
        for other_dtype in (dtype, "float32", "int64", "bool"):
            b = make_pair((4,), other_dtype, "contig", rng, _DOMAIN.get(op, "any"))
            _check_inplace(op, lambda L, x, y: getattr(x, op + "_")(y), a, [b], seed, layout)
        _check_inplace(op, lambda L, x: getattr(x, op + "_")(2), a, [], seed, layout)


AUGMENTED = {
    "+=": lambda x, y: x.__iadd__(y), "-=": lambda x, y: x.__isub__(y), "*=": lambda x, y: x.__imul__(y),
    "/=": lambda x, y: x.__itruediv__(y), "//=": lambda x, y: x.__ifloordiv__(y),
    "%=": lambda x, y: x.__imod__(y), "**=": lambda x, y: x.__ipow__(y),
    "&=": lambda x, y: x.__iand__(y), "|=": lambda x, y: x.__ior__(y), "^=": lambda x, y: x.__ixor__(y),
}


@pytest.mark.parametrize("op", list(AUGMENTED))
def test_augmented_assignment(op, rng, seed):
    """`x += y` and friends are in place: the same object, the same storage, torch's dtype rules."""
    f = AUGMENTED[op]
    for da in ("float32", "int64", "bool", "float64"):
        for db in ("float32", "int32", "float64", "bool", 2, 0.5):
            a = make_pair((2, 3), da, "contig", rng, "pos")
            b = db if not isinstance(db, str) else make_pair((3,), db, "contig", rng, "pos")
            _check_inplace(op, lambda L, x, *y: f(x, *y) if y else f(x, db), a,
                           [b] if isinstance(db, str) else [], seed, "contig")


@pytest.mark.parametrize("op", ["clamp_", "clip_", "clamp_min_", "clamp_max_", "lerp_", "masked_fill_",
                                "fill_", "zero_", "copy_", "add_alpha", "mul_", "div_mode"])
def test_inplace_with_arguments(op, rng, seed):
    a = make_pair((3, 4), "float32", "contig", rng)
    b = make_pair((3, 4), "float32", "contig", rng)
    mask = make_pair((4,), "bool", "contig", rng)
    calls = {
        "clamp_": lambda L, x: x.clamp_(-0.5, 0.5), "clip_": lambda L, x: x.clip_(min=0.0),
        "clamp_min_": lambda L, x: x.clamp_min_(0.1), "clamp_max_": lambda L, x: x.clamp_max_(0.1),
        "lerp_": lambda L, x, y: x.lerp_(y, 0.3), "masked_fill_": lambda L, x, m: x.masked_fill_(m, -7.0),
        "fill_": lambda L, x: x.fill_(2.5), "zero_": lambda L, x: x.zero_(), "copy_": lambda L, x, y: x.copy_(y),
        "add_alpha": lambda L, x, y: x.add_(y, alpha=-2), "mul_": lambda L, x: x.mul_(True),
        "div_mode": lambda L, x, y: x.div_(y, rounding_mode="floor"),
    }
    fn = calls[op]
    nargs = fn.__code__.co_argcount - 2
    others = [b, mask][:nargs] if op != "masked_fill_" else [mask]
    for layout in ("contig", "transposed"):
        _check_inplace(op, fn, a, others, seed, layout)


# ---- out= -----------------------------------------------------------------------------------------
OUT_OPS = {
    "add": lambda L, a, b, out: L.add(a, b, out=out), "mul": lambda L, a, b, out: L.mul(a, b, out=out),
    "sub": lambda L, a, b, out: L.sub(a, b, alpha=2, out=out), "div": lambda L, a, b, out: L.div(a, b, out=out),
    "pow": lambda L, a, b, out: L.pow(a.abs(), b, out=out), "maximum": lambda L, a, b, out: L.maximum(a, b, out=out),
    "eq": lambda L, a, b, out: L.eq(a, b, out=out), "exp": lambda L, a, b, out: L.exp(a, out=out),
    "sqrt": lambda L, a, b, out: L.sqrt(a.abs(), out=out), "clamp": lambda L, a, b, out: L.clamp(a, 0, 1, out=out),
    "neg": lambda L, a, b, out: L.neg(a, out=out), "remainder": lambda L, a, b, out: L.remainder(a, b, out=out),
}


@pytest.mark.parametrize("op", list(OUT_OPS))
@pytest.mark.parametrize("out_dtype", ["float32", "float64", "int64", "bool", "float16"])
def test_out(op, out_dtype, rng, seed):
    """out= writes into the given tensor (casting when torch allows it), resizes an empty one, returns it."""
    fn = OUT_OPS[op]
    a = make_pair((3, 4), "float32", "contig", rng, "nonzero")
    b = make_pair((4,), "float32", "contig", rng, "nonzero")
    for out_shape in ((3, 4), (0,)):
        out = make_pair(out_shape, out_dtype, "contig", rng)
        ctx = describe(op, [a[0], b[0], out[0]], seed, out_shape=out_shape)
        ours, theirs, texc = run_both(lambda L, x, y, o: (fn(L, x, y, o), o), [a[0], b[0], out[0]],
                                      [a[1], b[1], out[1]], ctx)
        if texc is None:
            assert ours[0] is ours[1], f"out= did not return out\n  {ctx}"
            assert_same(ours[1], theirs[1], ctx)
    # writing through an out= that is a view of a bigger tensor
    big = make_pair((3, 8), "float32", "contig", rng)
    check_op(op + " out=view", lambda L, x, y, o: (fn(L, x, y, o[:, ::2]), o)[1], [a, b, big], seed=seed)


# ---- random shapes, layouts and broadcasts --------------------------------------------------------------
@st.composite
def shapes(draw, min_dims=0, max_dims=5, max_side=4):
    n = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.lists(st.integers(0, max_side), min_size=n, max_size=n)))


@st.composite
def broadcastable(draw):
    """Two shapes that broadcast: drop leading dims and set some dims to 1 in each."""
    out = draw(shapes(max_dims=5))
    a, b = [], []
    for n in out:
        a.append(1 if draw(st.booleans()) else n)
        b.append(1 if draw(st.booleans()) else n)
    ka = draw(st.integers(0, len(out)))
    kb = draw(st.integers(0, len(out)))
    return tuple(a[ka:]), tuple(b[kb:])


@given(op=st.sampled_from(sorted(UNARY)), dtype=st.sampled_from(DTYPES), shape=shapes(),
       layout=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2 ** 31))
def test_unary_random(op, dtype, shape, layout, seed):
    import numpy as np

    fn, domain = UNARY[op]
    x = make_pair(shape, dtype, layout, np.random.default_rng(seed), domain)
    check_op(op, fn, [x], seed=seed, layout=layout)


@given(op=st.sampled_from(sorted(BINARY)), da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES),
       shapes=broadcastable(), la=st.sampled_from(sorted(LAYOUTS)), lb=st.sampled_from(sorted(LAYOUTS)),
       seed=st.integers(0, 2 ** 31))
def test_binary_random(op, da, db, shapes, la, lb, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    fn, domain = BINARY[op]
    a = make_pair(shapes[0], da, la, rng, "any")
    b = make_pair(shapes[1], db, lb, rng, domain)
    check_op(op, fn, [a, b], seed=seed, layouts=(la, lb))
