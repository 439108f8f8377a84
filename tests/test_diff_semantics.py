"""torch's rules, differentially: type promotion over a matrix of binary ops and operand kinds (tensor
with dims, 0-d tensor, Python bool/int/float) with in-place forms, integer division and overflow, the
checked conversion of fill-like scalars, shape and dim errors with torch's key phrases, and views versus
copies. Every scenario runs in both libraries (tests/side_by_side.py): the same values, dtypes and
requires_grad, or the same exception type and message.
"""
from __future__ import annotations

import itertools

import pytest
import torch

import tracegrad
from side_by_side import both, _match, raises_same, same
from util import DTYPES

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _tensor(L, dt: str, kind: str, which: int = 0):
    """A small tensor of `dt` with negatives, zeros and (for uint8) large values; kind "zero" is 0-d."""
    if dt == "bool":
        v = [True, False, True, True] if which == 0 else [False, True, True, False]
    elif dt == "uint8":
        v = [3, 0, 5, 250] if which == 0 else [2, 0, 7, 3]
    else:
        v = [-3, 0, 5, -7] if which == 0 else [2, 0, -3, 4]
    if kind == "zero":
        v = v[0] if which == 0 else v[2]
    return L.tensor(v, dtype=getattr(L, dt))


def _agree(fn, ctx):
    """fn(torch) and fn(tracegrad): the same result, or the same exception type and message; never a
    NumPy or Python-internal exception where torch raises its own."""
    ref, ours = both(fn)
    assert _match(ours, ref), f"{ctx}\n  tracegrad: {str(ours)[:300]}\n  torch:     {str(ref)[:300]}"


KINDS = [("dim", "dim"), ("dim", "zero"), ("zero", "dim"), ("zero", "zero")]

BINARY = {
    "add": lambda L, a, b: L.add(a, b), "sub": lambda L, a, b: L.sub(a, b), "mul": lambda L, a, b: L.mul(a, b),
    "div": lambda L, a, b: L.div(a, b), "true_divide": lambda L, a, b: L.true_divide(a, b),
    "div_floor": lambda L, a, b: L.div(a, b, rounding_mode="floor"),
    "div_trunc": lambda L, a, b: L.div(a, b, rounding_mode="trunc"),
    "floor_divide": lambda L, a, b: L.floor_divide(a, b), "remainder": lambda L, a, b: L.remainder(a, b),
    "fmod": lambda L, a, b: L.fmod(a, b), "pow": lambda L, a, b: L.pow(a, b),
    "maximum": lambda L, a, b: L.maximum(a, b), "minimum": lambda L, a, b: L.minimum(a, b),
    "eq": lambda L, a, b: L.eq(a, b), "lt": lambda L, a, b: L.lt(a, b), "ne": lambda L, a, b: a != b,
    "ge": lambda L, a, b: a >= b, "logical_and": lambda L, a, b: L.logical_and(a, b),
    "logical_xor": lambda L, a, b: L.logical_xor(a, b),
    "where": lambda L, a, b: L.where(L.tensor([True, False, True, False]), a, b),
    "atan2": lambda L, a, b: L.atan2(a, b), "and": lambda L, a, b: a & b, "or": lambda L, a, b: a | b,
    "xor": lambda L, a, b: a ^ b, "lerp": lambda L, a, b: L.lerp(a, b, 0.5),
    "lerp_tensor_weight": lambda L, a, b: L.lerp(a, a, b),
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_dtype_matrix(op):
    """Every pair of dtypes and every pairing of dimensioned / 0-d tensors: result dtype and values,
    or the error, as torch (division by an integer zero, bool subtraction, float bitwise ops...)."""
    fn = BINARY[op]
    for da, db in itertools.product(DTYPES, DTYPES):
        for ka, kb in KINDS:
            _agree(lambda L: fn(L, _tensor(L, da, ka, 0), _tensor(L, db, kb, 1)), f"{op} {da}/{ka} {db}/{kb}")


SCALARS = [True, False, 3, -2, 0, 2.5, -0.5, 0.0, 300, -129, float("inf")]

WITH_SCALAR = {
    "add": lambda L, a, s: L.add(a, s), "sub": lambda L, a, s: a - s, "rsub": lambda L, a, s: s - a,
    "mul": lambda L, a, s: a * s, "div": lambda L, a, s: a / s, "rdiv": lambda L, a, s: s / a,
    "floordiv": lambda L, a, s: a // s, "rfloordiv": lambda L, a, s: s // a, "mod": lambda L, a, s: a % s,
    "rmod": lambda L, a, s: s % a, "pow": lambda L, a, s: a ** s, "rpow": lambda L, a, s: s ** a,
    "eq": lambda L, a, s: a == s, "lt": lambda L, a, s: a < s, "and": lambda L, a, s: a & s,
    "or": lambda L, a, s: s | a, "xor": lambda L, a, s: a ^ s,
    "where": lambda L, a, s: L.where(a > 0, a, s), "where_first": lambda L, a, s: L.where(a > 0, s, a),
    "clamp_min": lambda L, a, s: L.clamp(a, min=s), "clamp_max": lambda L, a, s: a.clamp(max=s),
    "div_floor": lambda L, a, s: L.div(a, s, rounding_mode="floor"),
    "div_trunc": lambda L, a, s: L.div(a, s, rounding_mode="trunc"), "fmod": lambda L, a, s: L.fmod(a, s),
    "remainder_scalar_first": lambda L, a, s: L.remainder(s, a), "lerp": lambda L, a, s: L.lerp(a, a * 2, s),
    "masked_fill": lambda L, a, s: a.masked_fill(a > 0, s), "fill_": lambda L, a, s: a.clone().fill_(s),
    "full_like": lambda L, a, s: L.full_like(a, s), "index_fill": lambda L, a, s: a.reshape(-1).index_fill(0, L.tensor([0]), s),
    "setitem": lambda L, a, s: (lambda c: (c.__setitem__(0, s), c)[1])(a.clone().reshape(-1)),
    "setitem_mask": lambda L, a, s: (lambda c: (c.__setitem__(c > 0, s), c)[1])(a.clone()),
}


@pytest.mark.parametrize("op", sorted(WITH_SCALAR))
def test_python_scalar_operands(op):
    """Python bool/int/float operands of each category against tensors of every dtype, dimensioned
    and 0-d: the scalar never widens within its category; fill-like ops check that the value fits
    the dtype ("value cannot be converted to type int8_t without overflow"); arithmetic wraps."""
    fn = WITH_SCALAR[op]
    for dt, kind, s in itertools.product(DTYPES, ("dim", "zero"), SCALARS):
        _agree(lambda L: fn(L, _tensor(L, dt, kind), s), f"{op} {dt}/{kind} {s!r}")


INPLACE = {
    "add_": lambda L, a, b: a.add_(b), "sub_": lambda L, a, b: a.sub_(b), "mul_": lambda L, a, b: a.mul_(b),
    "div_": lambda L, a, b: a.div_(b), "iadd": lambda L, a, b: a.__iadd__(b), "isub": lambda L, a, b: a.__isub__(b),
    "imul": lambda L, a, b: a.__imul__(b), "itruediv": lambda L, a, b: a.__itruediv__(b),
    "ifloordiv": lambda L, a, b: a.__ifloordiv__(b), "imod": lambda L, a, b: a.__imod__(b),
    "ipow": lambda L, a, b: a.__ipow__(b), "pow_": lambda L, a, b: a.pow_(b),
    "floor_divide_": lambda L, a, b: a.floor_divide_(b), "remainder_": lambda L, a, b: a.remainder_(b),
    "iand": lambda L, a, b: a.__iand__(b), "ior": lambda L, a, b: a.__ior__(b), "ixor": lambda L, a, b: a.__ixor__(b),
    "maximum_out": lambda L, a, b: L.maximum(a, b, out=a),
    "clamp_": lambda L, a, b: a.clamp_(min=b), "lerp_": lambda L, a, b: a.lerp_(a, b),
    "copy_": lambda L, a, b: a.copy_(b),
}


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_inplace_dtype_matrix(op):
    """In-place forms keep self's dtype; a result of a higher category is torch's "result type Float
    can't be cast to the desired output type Long", checked before the kernel runs (so a bool
    `x //= int_tensor` holding a zero is the cast error, and `int_x &= float_tensor` too)."""
    fn = INPLACE[op]
    # (lerp_ on a 0-d integer tensor: torch binds a 0-d weight as a Scalar and words that error its own way)
    for da, ka in itertools.product(DTYPES, ("dim",) if op == "lerp_" else ("dim", "zero")):
        for db in DTYPES:
            kb = "dim" if ka == "dim" else "zero"
            _agree(lambda L: fn(L, _tensor(L, da, ka, 0), _tensor(L, db, kb, 1)), f"{op} {da}/{ka} {db}/{kb}")
        for s in (True, 3, -2, 2.5, 0):
            _agree(lambda L: fn(L, _tensor(L, da, ka, 0), s), f"{op} {da}/{ka} {s!r}")


@pytest.mark.parametrize("case", [
    # fill-like scalars go through torch's checked conversion (c10's overflows)
    lambda L: L.ones(3, dtype=L.int8).fill_(127.5),
    lambda L: L.ones(3, dtype=L.int8).fill_(-128.5),
    lambda L: L.ones(3, dtype=L.uint8).fill_(-1.0),
    lambda L: L.ones(3, dtype=L.int32).fill_(float("nan")),
    lambda L: L.ones(3, dtype=L.int64).fill_(2 ** 63),
    lambda L: L.ones(3, dtype=L.float16).fill_(65519.0),
    lambda L: L.ones(3, dtype=L.float16).fill_(-1e5),
    lambda L: L.ones(3, dtype=L.bfloat16).fill_(1e39),
    lambda L: L.ones(3, dtype=L.float32).fill_(1e39),
    lambda L: L.full((2,), float("inf"), dtype=L.int32),
    lambda L: L.full((2,), 1e5, dtype=L.float16),
    lambda L: L.zeros(3, dtype=L.int8).new_full((2,), 300),
    lambda L: L.ones(3, dtype=L.float16).clamp(max=1e5),
    lambda L: L.ones(3, dtype=L.int32).masked_fill(L.ones(3, dtype=L.bool), float("nan")),
    lambda L: L.ones(3, dtype=L.int8).masked_fill(L.ones(3, dtype=L.bool), L.tensor(300)),
    lambda L: L.ones(3, dtype=L.float16).masked_fill(L.ones(3, dtype=L.bool), 1e5),
    lambda L: L.ones(3, dtype=L.int8).index_fill(0, L.tensor([0]), 300),
    lambda L: L.ones(3, dtype=L.int8) ** 300,
    lambda L: L.where(L.tensor([False]), L.ones(1, dtype=L.int32), 2 ** 40),
    lambda L: L.zeros(2, dtype=L.int8).__setitem__(0, 127.5),
    lambda L: L.zeros(2, dtype=L.uint8).__setitem__([0], -1.0),
    lambda L: L.zeros(2).__setitem__(0, 1e39),
    lambda L: L.tensor([True, False]).clamp(min=True),
    lambda L: L.tensor([True, False]).clamp(True, False),
    lambda L: True ** L.tensor([True, False]),
    lambda L: L.lerp(L.ones(2), L.ones(2), L.ones(2, dtype=L.float64)),
    lambda L: L.lerp(L.ones(2, dtype=L.int64), L.ones(2, dtype=L.int64), L.ones(2)),
    lambda L: L.ones(2).lerp_(L.ones(2), L.ones(2, dtype=L.float64)),
    lambda L: L.ones(3, dtype=L.int64) ** -1,
    lambda L: L.ones(3, dtype=L.uint8).pow_(-1),
])
def test_scalar_conversion_errors(case):
    raises_same(case)


@pytest.mark.parametrize("case", [
    # one-element tensors fill half/bfloat16 unchecked in torch, and some conversions wrap or round
    lambda L: L.tensor([1.0], dtype=L.float16).fill_(1e5),
    lambda L: L.tensor(1.0, dtype=L.float16).fill_(2 ** 40),
    lambda L: L.full((1,), 1e5, dtype=L.float16),
    lambda L: L.ones(3, dtype=L.uint8).fill_(-1),
    lambda L: L.ones(3, dtype=L.int64).fill_(-2 ** 63),
    lambda L: L.ones(3, dtype=L.float16).fill_(65504.0),
    lambda L: L.ones(3, dtype=L.float16).fill_(float("inf")),
    lambda L: L.ones(3, dtype=L.int8).masked_fill(L.ones(3, dtype=L.bool), 2.5),
    lambda L: L.ones(3, dtype=L.int8).fill_(L.tensor(300)),
    lambda L: L.ones(3, dtype=L.int32).clamp(min=2.0 ** 40),
    lambda L: L.ones(3, dtype=L.int32).clamp(min=float("inf")),
    lambda L: L.tensor([True, False]).clamp(min=0),
    lambda L: L.where(L.tensor([False]), L.ones(1, dtype=L.float16), 1e5),
    lambda L: L.where(L.tensor([False]), L.ones(1, dtype=L.uint8), -1),
    lambda L: L.where(L.tensor([True]), L.ones(1, dtype=L.int8), 2.5),
    lambda L: (lambda x: (x.__setitem__(0, 1e5), x)[1])(L.zeros(2, dtype=L.float16)),
    lambda L: (lambda x: (x.__setitem__(0, -1), x)[1])(L.zeros(2, dtype=L.uint8)),
    lambda L: L.ones(3, dtype=L.int8) * 300,
    lambda L: L.ones(3, dtype=L.int8).add_(300),
    lambda L: True ** L.tensor([-1, 2, 0]),
    lambda L: L.pow(False, L.tensor([-1, 2, 0], dtype=L.int16)),
    lambda L: 2 ** L.tensor([-1, 2, 0]),
    lambda L: L.pow(-1, L.tensor([-1, -2, 0])),
    lambda L: L.tensor([2, 1, -1, 0], dtype=L.int8).pow(L.tensor([-1, -2, -3, -4], dtype=L.int8)),
    lambda L: L.tensor([True, False]) ** True,
    lambda L: L.tensor(2.5, dtype=L.bfloat16) % False,
    lambda L: L.tensor(2.5, dtype=L.bfloat16).remainder_(0),
    lambda L: L.lerp(L.ones(2), L.zeros(2), L.tensor(0.25, dtype=L.float64)),
])
def test_scalar_conversions_that_succeed(case):
    same(case)


@pytest.mark.parametrize("case", [
    # integer division and remainder: floor semantics with negative operands, trunc for fmod and
    # rounding_mode="trunc", torch's ZeroDivisionError for integer zero divisors, true division by zero
    lambda L: L.tensor([-7, 7, -7, 7, 0]) // L.tensor([2, -2, -2, 2, 3]),
    lambda L: L.tensor([-7, 7, -7, 7, 0]) % L.tensor([2, -2, -2, 2, 3]),
    lambda L: L.fmod(L.tensor([-7, 7, -7, 7]), L.tensor([2, -2, -2, 2])),
    lambda L: L.div(L.tensor([-7, 7, -7, 7]), L.tensor([2, -2, -2, 2]), rounding_mode="trunc"),
    lambda L: L.div(L.tensor([-7, 7, -7, 7]), L.tensor([2, -2, -2, 2]), rounding_mode="floor"),
    lambda L: L.tensor([-7, 7, 0]) / 0,
    lambda L: L.tensor([-7.0, 7.0, 0.0]) // 0,
    lambda L: L.tensor([-7.0, 7.0, 0.0]) % 0,
    lambda L: L.tensor([-7.5, 7.5]) % L.tensor([2.0, -2.0]),
    lambda L: L.tensor([-128], dtype=L.int8) // -1,
    lambda L: L.tensor([5], dtype=L.uint8) // 2,
    # wraparound
    lambda L: L.tensor([127], dtype=L.int8) + 1,
    lambda L: L.tensor([0], dtype=L.uint8) - 1,
    lambda L: L.tensor([200], dtype=L.uint8) + L.tensor([100], dtype=L.uint8),
    lambda L: L.tensor([200], dtype=L.uint8) * 2,
    lambda L: L.tensor([2 ** 62]) * 4,
    lambda L: L.tensor([2 ** 31 - 1], dtype=L.int32) + 1,
    lambda L: -L.tensor([-128], dtype=L.int8),
    lambda L: L.tensor([3], dtype=L.uint8) - L.tensor([5], dtype=L.uint8),
    lambda L: L.tensor([3], dtype=L.uint8) + L.tensor([-5], dtype=L.int8),
    lambda L: L.tensor([250], dtype=L.uint8) + L.tensor(10),
    lambda L: L.tensor([250], dtype=L.uint8).sum(),
    lambda L: L.tensor([2, 3], dtype=L.uint8) ** 8,
    lambda L: L.tensor([-1, 2]) ** 63,
    lambda L: L.tensor([True, True]).sum(),
    lambda L: L.add(5, 5) if L is tracegrad else torch.add(torch.tensor(5), 5),
])
def test_integer_arithmetic(case):
    same(case)


@pytest.mark.parametrize("case", [
    lambda L: L.tensor([1, 2]) // 0,
    lambda L: L.tensor([1, 2]) % L.tensor([1, 0]),
    lambda L: L.tensor([1, 2], dtype=L.uint8).remainder_(0),
    lambda L: L.div(L.tensor([1, 2]), 0, rounding_mode="trunc"),
    lambda L: L.fmod(L.tensor([1, 2], dtype=L.int16), 0),
    lambda L: L.tensor([True, False]).__ifloordiv__(L.tensor([0, 1])),
    lambda L: L.tensor([True, False]).remainder_(L.tensor([0, 1], dtype=L.int8)),
    lambda L: L.tensor([1, 2], dtype=L.int8).__iand__(L.tensor([1.0, 2.0])),
    lambda L: L.tensor([1, 2]).__ixor__(L.tensor(1.5, dtype=L.float64)),
    lambda L: L.tensor([1, 2]).add_(1.5),
    lambda L: L.tensor([1, 2]).__itruediv__(2),
    lambda L: L.tensor([True]).__iadd__(L.tensor([1])),
    lambda L: L.tensor([True]).__isub__(3),
    lambda L: L.tensor([1, 2]).mul_(L.tensor(2.0)),
    lambda L: L.tensor([1, 2]).pow_(0.5),
    lambda L: L.ones(2, dtype=L.int64).clamp_(2.5, 3),
    lambda L: L.ones(2, dtype=L.int8).clip_(2.5),
    lambda L: L.ones(2, dtype=L.int8).clamp_min_(2.5),
    lambda L: L.ones(2, dtype=L.int16).clamp_max_(2.5),
    lambda L: L.ones(2, dtype=L.int8).clamp_(min=L.tensor(2.5)),
])
def test_integer_arithmetic_errors(case):
    raises_same(case)


# ---- shapes, dims and indices: torch's error type and message ------------------------------------
SHAPE_ERRORS = [
    # broadcasting: torch walks the dims from the last, and names the mask "a" in masked ops
    lambda L: L.ones(2, 3) + L.ones(3, 2),
    lambda L: L.ones(2, 3, 4) * L.ones(5, 1, 1),
    lambda L: L.ones(2, 3) == L.ones(3, 3, 2),
    lambda L: L.where(L.ones(2, 3, dtype=L.bool), L.ones(3, 2), 0.0),
    lambda L: L.ones(2, 3).masked_fill(L.ones(3, 3, dtype=L.bool), 0.0),
    lambda L: L.ones(2, 3).masked_select(L.ones(3, 3, dtype=L.bool)),
    lambda L: L.ones(2, 3).masked_fill(L.ones(2, 3, dtype=L.uint8), 0.0),
    lambda L: L.ones(1, 3).add_(L.ones(2, 3)),
    # matrix products: shapes and dtypes, in the words of the kernel torch reaches
    lambda L: L.bmm(L.ones(2, 3, 4), L.ones(2, 4, 6, dtype=L.float64)),
    lambda L: L.bmm(L.ones(2, 3, 4, dtype=L.float64), L.ones(2, 4, 6)),
    lambda L: L.ones(5, 2, 3, dtype=L.float64) @ L.ones(5, 3, 2),
    lambda L: L.ones(2, 3) @ L.ones(5, 3, 2, dtype=L.float64),
    lambda L: L.ones(5, 2, 3) @ L.ones(3, 2, dtype=L.float64),
    lambda L: L.ones(5, 2, 3) @ L.ones(3, dtype=L.float64),
    lambda L: L.mv(L.ones(3, 4), L.ones(4, dtype=L.float64)),
    lambda L: L.mv(L.ones(3, 4, dtype=L.int64), L.ones(4)),
    lambda L: L.ones(3, 4, dtype=L.float64) @ L.ones(4),
    lambda L: L.ones(4) @ L.ones(4, 3, dtype=L.float64),
    lambda L: L.mv(L.ones(3, 4), L.ones(4, 1)),
    lambda L: L.mv(L.ones(4), L.ones(4)),
    lambda L: L.mm(L.ones(2, 3, dtype=L.float64), L.ones(3, 2)),
    lambda L: L.outer(L.ones(3), L.ones(2, 2)),
    lambda L: L.outer(L.ones(3, 1), L.ones(2)),
    # cat / stack / split / narrow / flip / diagonal / view
    lambda L: L.cat(L.ones(2, 3)),
    lambda L: L.stack(L.ones(2, 3)),
    lambda L: L.ones(0).view(0, -1),
    lambda L: L.ones(2, 3).narrow(1, 0, -1),
    lambda L: L.ones(2, 3).split([-1, 4], 1),
    lambda L: L.ones(2, 3).flip(0, 0),
    lambda L: L.ones(2, 3).flip(-1, 1),
    lambda L: L.ones(2, 3).diagonal(0, 0, 0),
    lambda L: L.ones(2, 3).diagonal(0, -1, 1),
    # integer indices: the dimension named is the entry's position in the index (`...` counts once),
    # and for index tensors their position among the index tensors
    lambda L: L.ones(2, 3)[0, 3],
    lambda L: L.ones(2, 3)[:, -4],
    lambda L: L.ones(2, 3, 4)[..., 5],
    lambda L: L.ones(2, 3, 4)[None, 1, 5],
    lambda L: L.ones(2, 3, 4)[1, :, 5],
    lambda L: L.ones(2, 3, 4)[:, :, L.tensor([5])],
    lambda L: L.ones(2, 3, 4)[:, [0], [7]],
    lambda L: L.ones(2, 3, 4)[L.ones(2, 3, dtype=L.bool), [7]],
    lambda L: L.ones(2, 3)[:, L.tensor([0, 3])],
    lambda L: L.ones(2, 3)[1.5],
    lambda L: L.ones(2, 3)[0, 1.0],
    lambda L: L.ones(2, 3, 4).__setitem__((1, slice(None), 5), 1.0),
    lambda L: L.ones(2, 3, 4).__setitem__((slice(None), slice(None), L.tensor([5])), 1.0),
    lambda L: L.ones(2, 3).__setitem__((0, 3), 1.0),
    # setitem expands the value (expand's message), after dropping its leading 1s
    lambda L: L.ones(2, 3).__setitem__(0, L.ones(4)),
    lambda L: L.ones(2, 3).__setitem__(slice(None), L.ones(3, 3)),
    lambda L: L.ones(2, 3).__setitem__(0, L.ones(1, 1, 2)),
    # scatter / gather / index_* argument checks
    lambda L: L.ones(2, 3).scatter(1, L.tensor([0, 1]), L.ones(2)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[0], [1]]), L.ones(2)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[0, 1]]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).scatter(0, L.tensor([[1, 0, 1, 0]]), 2.0),
    lambda L: L.ones(3).scatter(0, L.tensor([[0]]), 1.0),
    lambda L: L.ones(2, 3).scatter_add(1, L.tensor([0, 1]), L.ones(2)),
    lambda L: L.ones(2, 3).scatter_add(1, L.tensor([[0, 1]]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).scatter_add(1, L.tensor([[0], [1]]), L.ones(2, 1, dtype=L.float64)),
    lambda L: L.ones(2, 3).scatter_add(1, L.tensor([[0], [1]], dtype=L.int16), L.ones(2, 1)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[0], [1]]), L.ones(2, 1, dtype=L.float64)),
    lambda L: L.ones(2, 3).gather(1, L.tensor([[0], [1]], dtype=L.int16)),
    lambda L: L.ones(2, 3).index_select(1, L.tensor([0], dtype=L.int16)),
    lambda L: L.ones(2, 3).index_select(1, L.tensor([[0]])),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0]), L.ones(2, 2)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0]), L.ones(3, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0.0]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([[0]]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([-1]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([5]), L.ones(2, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0]), L.ones(2)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0]), L.ones(2, 1, dtype=L.float64)),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([5]), 0),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([-4]), 0),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([0.0]), 0),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([0], dtype=L.int32), 0),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([[0]]), 0),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([0]), L.tensor([1.0])),
]


@pytest.mark.parametrize("i", range(len(SHAPE_ERRORS)))
def test_shape_and_index_errors(i):
    raises_same(SHAPE_ERRORS[i])


SHAPE_OK = [
    # the valid neighbours of the cases above: values, dtypes and shapes as torch
    lambda L: L.ones(3).scatter(0, L.tensor(1), 5.0),
    lambda L: L.ones(3).scatter(0, L.tensor(1), L.tensor(7.0)),
    lambda L: L.tensor(1.0).scatter(0, L.tensor([0]), 7.0),
    lambda L: L.tensor(1.0).scatter(0, L.tensor(0), L.tensor(7.0)),
    lambda L: L.tensor(1.0).scatter_add(0, L.tensor([0]), L.tensor([7.0])),
    lambda L: L.ones(3).scatter_add(0, L.tensor(1), L.tensor(7.0)),
    lambda L: L.ones(2, 3).scatter(1, L.tensor([[2, 0], [1, 1]]), L.arange(6.0).reshape(2, 3)),
    lambda L: L.ones(2, 3).scatter(1, L.zeros(0, 1, dtype=L.int64), 2.0),
    lambda L: L.ones(2, 3).scatter_add(0, L.tensor([[1, 0]]), L.arange(6.0).reshape(2, 3)),
    lambda L: L.ones(2, 3).index_add(0, L.tensor([1, 0, 1]), L.arange(9.0).reshape(3, 3), alpha=2),
    lambda L: L.ones(2, 3).index_add(1, L.tensor(0), L.ones(2, 1)),
    lambda L: L.ones(2, 3).index_add(1, L.tensor([0], dtype=L.int32), L.ones(2, 1)),
    lambda L: L.tensor(1.0).index_add(0, L.tensor([0]), L.tensor(2.0)),
    lambda L: L.ones(3).index_add(0, L.tensor([0]), L.tensor(2.0)),
    lambda L: L.ones(2, 3).index_fill(1, L.tensor([-1]), 0),
    lambda L: L.ones(2, 3).index_fill(0, L.tensor(1), L.tensor(3.0)),
    lambda L: L.ones(2, 3, dtype=L.uint8).index_fill(1, L.tensor([0]), -2),
    lambda L: L.ones(2, 3).index_select(1, L.tensor([2, 0], dtype=L.int32)),
    lambda L: L.ones(2, 3, 4)[..., 2, :],
    lambda L: (lambda x: (x.__setitem__(0, L.ones(1, 1, 3)), x)[1])(L.zeros(2, 3)),
    lambda L: (lambda x: (x.__setitem__(slice(None), L.ones(1, 3)), x)[1])(L.zeros(2, 3)),
    lambda L: L.ones(2, 3).split([0, 3], 1),
    lambda L: L.ones(2, 3).narrow(1, 3, 0),
    lambda L: L.arange(6.0).reshape(2, 3).flip(0, 1),
    lambda L: L.arange(6.0).reshape(2, 3).diagonal(0, -1, 0),
    lambda L: L.outer(L.ones(3), L.ones(2, dtype=L.float64)),
    lambda L: L.ones(0, 3).view(-1, 3),
]


@pytest.mark.parametrize("i", range(len(SHAPE_OK)))
def test_shape_and_index_ok(i):
    same(SHAPE_OK[i])


# ---- views and copies -------------------------------------------------------------------------------
def _shares(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


VIEW_CASES = [
    "x.view(6, 4)", "x.reshape(4, 6)", "x.transpose(0, 1).reshape(-1)", "x.transpose(1, 2).reshape(2, 12)",
    "x[:, 1:].reshape(-1)", "x[:, :, ::2].reshape(2, 6)", "x[:, 0].reshape(8)", "x.expand(2, 2, 3, 4)",
    "x[:, :1].expand(2, 3, 4)", "x[:, :1].expand(2, 3, 4).reshape(-1)", "x.flatten(1)",
    "x.transpose(1, 2).flatten(0, 1)", "x.unflatten(2, (2, 2))", "x[:, :1].squeeze(1)", "x.narrow(2, 1, 2)",
    "x.select(1, 2)", "x.chunk(2, 2)[1]", "x.split(1, 1)[2]", "x.unbind(0)[1]", "x.diagonal(0, 1, 2)", "x.detach()",
    "x.mT", "x.movedim(0, 2)", "x.contiguous()", "x.transpose(0, 1).contiguous()", "x[..., None]", "x[...]",
    "x[[0, 1]]", "x[x > 0]", "x[0, [0, 2]]", "x.clone()", "x.flip(0)", "x.as_strided((2, 2), (1, 2), 1)",
    "x.swapaxes(0, 1)", "x.data", "x.view(x.dtype)", "x.view(L.int32)", "x.view(L.int16)", "x[:, 1:].view(L.int16)",
    "x.view(L.float64)", "x.reshape(6, 4)[::2].view(L.float64)", "x.view(L.uint8)", "x.ravel()",
    "x.transpose(0, 1).ravel()", "x[:, :1].ravel()", "L.ravel(x[1:])",
]


@pytest.mark.parametrize("src", VIEW_CASES)
def test_views_share_and_write_through(src):
    """Whether the result shares the input's storage, its strides, offset and contiguity, what an
    in-place write through it does to the input, and both version counters, as torch."""
    def scenario(L):
        x = L.arange(24.0).reshape(2, 3, 4)
        y = eval(src, {"L": L, "x": x})
        meta = (_shares(y, x), y.is_contiguous(), list(y.stride()), y.storage_offset(), str(y.dtype))
        v0 = x._version
        y.add_(1)
        return meta, x.clone(), x._version - v0, y._version
    same(scenario)


@pytest.mark.parametrize("case", [
    lambda L: L.ones(2, 3).t().view(L.int16),
    lambda L: L.tensor(1.0).view(L.int16),
    lambda L: L.arange(6.0).reshape(2, 3)[:, 1:].view(L.float64),
    lambda L: L.arange(6.0).reshape(2, 3)[:, :2].view(L.float64),
    lambda L: L.arange(6.0).reshape(2, 3).view(L.float64),
    lambda L: L.ones(3, 1).expand(3, 4).add_(1),
    lambda L: L.ones(3, 1).expand(3, 4).mul_(L.ones(3, 4)),
    lambda L: L.ones(3, 1).expand(3, 4).copy_(L.ones(3, 4)),
    lambda L: L.ones(3, 1).expand(3, 4).__setitem__(0, 2.0),
    lambda L: L.ones(1).expand(4).__iadd__(1),
])
def test_view_errors(case):
    raises_same(case)


def test_fill_of_expanded_view():
    """fill_ writes one value, so torch allows it on an expanded view (the base sees it)."""
    same(lambda L: (lambda b: (b.expand(3, 4).fill_(2.0), b)[1])(L.ones(3, 1)))


@pytest.mark.parametrize("case", [
    lambda L: L.arange(6.0).reshape(2, 3).softmax(1),
    lambda L: L.arange(6.0).reshape(2, 3).softmax(-2),
    lambda L: L.arange(6.0).reshape(2, 3).log_softmax(0),
    lambda L: L.softmax(L.arange(6.0).reshape(2, 3), 1),
    lambda L: L.log_softmax(L.arange(6.0).reshape(2, 3), dim=-1, dtype=L.float64),
    lambda L: L.ones(3, dtype=L.int64).softmax(0, dtype=L.float32),
    lambda L: L.ones(2, requires_grad=True).softmax(0),
    lambda L: str(L.ones(2, 3, requires_grad=True).t().ravel().grad_fn.next_functions[0][0].name()),
    lambda L: str(L.ones(2, 3, requires_grad=True).ravel().grad_fn.name()),
])
def test_softmax_and_ravel_methods(case):
    """Tensor.softmax / log_softmax, torch.softmax and ravel (a view of contiguous()): everyday spellings."""
    same(case)


@pytest.mark.parametrize("case", [
    lambda L: L.ones(2, 3).softmax(2),
    lambda L: L.ones(2, 3).log_softmax(-3),
    lambda L: L.ones(3, dtype=L.int64).softmax(0),
    lambda L: L.ones(2, 3, dtype=L.int64).softmax(0),
    lambda L: L.ones(2, 3, dtype=L.int64).log_softmax(0),
    lambda L: L.ones(2, 3, dtype=L.int64).log_softmax(-1),
    lambda L: L.nn.functional.softmin(L.ones(2, 3, dtype=L.int64), 0),
])
def test_softmax_errors(case):
    raises_same(case)
