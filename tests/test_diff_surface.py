"""The user-facing surface against torch: Python protocols on tensors (`in`, `bool`), tensor() from
more kinds of data, factory argument errors, dtype limits (finfo/iinfo), closeness tests
(isclose/allclose) and small Tensor attributes (mH, is_signed).

Each case is one scenario run with torch and with tracegrad (`same` / `raises_same` from
side_by_side.py) or one op compared with `check_op`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tracegrad
from side_by_side import both, raises_same, same
from util import DTYPES, FLOATS, check_op, make_pair

X = [[1.5, -2.0, 3.0], [4.0, 5.25, -6.0]]


# ---- Python protocols ----------------------------------------------------------------------------
@pytest.mark.parametrize("element", [1.5, 7.0, -6, 3, True, "tensor_in", "tensor_out", "row"])
def test_contains(element):
    """`x in t` is (t == x).any() in torch; with no __contains__ Python iterated the rows and bool()
    raised for any 2-d tensor."""
    def fn(m):
        t = m.tensor(X)
        e = {"tensor_in": m.tensor(5.25), "tensor_out": m.tensor(0.5), "row": m.tensor([4.0, 0.0, 0.0])}
        return e.get(element, element) in t
    same(fn)


def test_contains_refuses_other_types():
    raises_same(lambda m: "a" in m.tensor(X), "__contains__ only supports Tensor or scalar")
    raises_same(lambda m: None in m.tensor([1, 2]), "__contains__ only supports Tensor or scalar")


@pytest.mark.parametrize("shape", [(0,), (2, 0), (2,), (2, 3)])
def test_bool_of_ambiguous_tensor_message(shape):
    """An empty tensor's truth value has its own message in torch ('with no values')."""
    raises_same(lambda m: bool(m.zeros(shape)))


# ---- tensor() from data and factory arguments --------------------------------------------------------
@pytest.mark.parametrize("data", [range(4), range(5, 0, -2), range(0), [range(3), range(3)]],
                         ids=["range", "range_step", "range_empty", "rows_of_ranges"])
def test_tensor_from_range(data):
    """torch.tensor takes any sequence; a range raised 'Could not infer dtype of range'."""
    same(lambda m: m.tensor(data))
    same(lambda m: m.tensor(data, dtype=m.float64))


@pytest.mark.parametrize("data", [[2 ** 63], 2 ** 63, [-2 ** 63 - 1], [[1], [2 ** 64]]])
def test_tensor_int_past_int64(data):
    """A Python int past int64 is torch's ValueError (NumPy's OverflowError leaked out)."""
    raises_same(lambda m: m.tensor(data), "Overflow when unpacking long long")
    same(lambda m: m.tensor(data, dtype=m.float64))  # in a float dtype it is just a big number


@pytest.mark.parametrize("factory", ["zeros", "ones", "empty", "rand", "randn"])
@pytest.mark.parametrize("size", [2.0, "3", None])
def test_factory_size_of_wrong_type(factory, size):
    """zeros(2.0) raised Python's "'float' object is not iterable" instead of torch's TypeError."""
    raises_same(lambda m: getattr(m, factory)(size), "must be tuple of ints")


# ---- dtype limits ---------------------------------------------------------------------------------
FINFO_FIELDS = "bits eps max min tiny smallest_normal resolution dtype".split()


@pytest.mark.parametrize("name", FLOATS + [None])
def test_finfo(name):
    info = (lambda m: m.finfo(getattr(m, name))) if name else (lambda m: m.finfo())
    same(lambda m: [getattr(info(m), f) for f in FINFO_FIELDS])
    same(lambda m: repr(info(m)))


@pytest.mark.parametrize("name", ["uint8", "int8", "int16", "int32", "int64"])
def test_iinfo(name):
    same(lambda m: [getattr(m.iinfo(getattr(m, name)), f) for f in ("bits", "min", "max", "dtype")])
    same(lambda m: repr(m.iinfo(getattr(m, name))))


def test_finfo_iinfo_refuse_the_other_category():
    raises_same(lambda m: m.finfo(m.int32))
    raises_same(lambda m: m.iinfo(m.float32))
    raises_same(lambda m: m.iinfo(m.bool))
    raises_same(lambda m: m.finfo(None))


def test_finfo_follows_default_dtype():
    def fn(m):
        m.set_default_dtype(m.float64)
        try:
            return m.finfo().eps
        finally:
            m.set_default_dtype(m.float32)
    same(fn)


# ---- isclose / allclose -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", DTYPES)
@pytest.mark.parametrize("tol", [{}, {"rtol": 0.1}, {"atol": 1.0}, {"rtol": 0.0, "atol": 0.0},
                                 {"equal_nan": True}])
def test_isclose(name, tol, rng):
    a, b = make_pair((4, 5), name, rng=rng)
    c, d = make_pair((4, 5), name, rng=rng)
    # half of c equals a, the rest is a small or large step away
    for x, y, L in ((a, c, tracegrad), (b, d, torch)):
        y[0] = x[0]
    check_op("isclose", lambda L, x, y: L.isclose(x, y, **tol), [(a, b), (c, d)])
    check_op("Tensor.isclose", lambda L, x, y: x.isclose(y, **tol), [(a, b), (c, d)])
    check_op("allclose", lambda L, x, y: L.allclose(x, y, **tol), [(a, b), (a, b)])
    check_op("allclose", lambda L, x, y: L.allclose(x, y, **tol), [(a, b), (c, d)])


def test_isclose_special_values():
    vals = [0.0, 1.0, math.inf, -math.inf, math.nan, 1e-9, 1.0 + 1e-6]
    other = [1e-9, 1.0 + 1e-7, math.inf, math.inf, math.nan, 0.0, 1.0]
    for kw in ({}, {"equal_nan": True}, {"rtol": 0, "atol": 0}):
        same(lambda m: m.isclose(m.tensor(vals), m.tensor(other), **kw))
        same(lambda m: m.allclose(m.tensor(vals[:2]), m.tensor(other[:2]), **kw))
    same(lambda m: m.isclose(m.tensor([[1.0], [2.0]]), m.tensor([1.0, 2.0, 2.0 + 1e-7])))  # broadcasts
    # an unsigned difference does not wrap around (1 - 2 is not 255 here)
    same(lambda m: m.isclose(m.tensor([1, 3, 0], dtype=m.uint8), m.tensor([2, 4, 2], dtype=m.uint8), atol=1))
    same(lambda m: m.isclose(m.tensor([True, False]), m.tensor([False, False]), atol=1))


def test_isclose_errors():
    raises_same(lambda m: m.isclose(m.ones(2), m.ones(2, dtype=m.float64)))
    raises_same(lambda m: m.isclose(m.ones(2), m.ones(2), rtol=-1))
    raises_same(lambda m: m.isclose(m.ones(2), m.ones(2), atol=-0.5))
    raises_same(lambda m: m.isclose(m.ones(2), 1.0))
    raises_same(lambda m: m.allclose(m.ones(2), m.ones(3)), "must match the size")


# ---- small Tensor attributes ------------------------------------------------------------------------
@pytest.mark.parametrize("name", DTYPES)
def test_is_signed(name):
    same(lambda m: m.ones(2, dtype=getattr(m, name)).is_signed())


def test_mH(rng):
    a, b = make_pair((2, 3, 4), "float32", "transposed", rng)
    check_op("mH", lambda L, x: x.mH, [(a, b)], sharing=0)


# ---- tensor() into integer dtypes, tensors inside lists, full()'s fill value ---------------------------
@pytest.mark.parametrize("case", [
    ([300], "uint8"), (300, "uint8"), ([-1, -255], "uint8"), ([-300], "uint8"), ([-1.5], "uint8"),
    ([128], "int8"), ([-128, 127], "int8"), ([1e10], "int32"), ([math.nan], "int32"), ([math.inf], "int64"),
    ([2 ** 63 - 1], "int32"), ([[1, 2 ** 40]], "int16"), ([True, 2], "uint8"), ([1.7, -2.7], "int8"),
    ([2 ** 64], "uint8"), ([[]], "int8"), ([1e40], "float32"),
], ids=str)
def test_tensor_values_that_do_not_fit(case):
    """torch refuses a number that does not fit an integer dtype; NumPy's cast wrapped 300 to 44."""
    data, name = case
    same(lambda m: m.tensor(data, dtype=getattr(m, name)))


@pytest.mark.parametrize("data", ["one_elem", "mixed_0d_1elem", "two_elem", "nested_two_elem"])
def test_tensor_of_tensors_reads_each_as_a_number(data):
    """A tensor inside a list is one number in torch; a 2-element one is torch's ValueError (we
    spliced its values in)."""
    def fn(m):
        return m.tensor({"one_elem": [m.tensor([1.0])], "mixed_0d_1elem": [m.tensor([[1.0]]), m.tensor(2.0)],
                         "two_elem": [m.tensor([1.0, 2.0]), m.tensor([3.0, 4.0])],
                         "nested_two_elem": [[m.tensor([1.0, 2.0])]]}[data])
    same(fn)


@pytest.mark.parametrize("fill", ["a", None, [1], "tensor_1d", "tensor_0d", 2, 2.5, True])
def test_full_fill_value_types(fill):
    """full() takes a number (or a 0-d tensor); others are torch's TypeError, not NumPy's ValueError."""
    def fn(m):
        v = {"tensor_1d": m.ones(2), "tensor_0d": m.tensor(3)}.get(fill, fill) if isinstance(fill, str) and \
            fill.startswith("tensor") else fill
        return m.full((2,), v)
    same(fn)


# ---- Size -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda m: m.Size([2]) * 2, lambda m: 2 * m.Size([1, 3]), lambda m: (1,) + m.Size([2]),
    lambda m: m.Size([2, 3]) + m.Size([4]), lambda m: m.ones(2, 3).shape + (4,), lambda m: m.ones(2, 3, 4).shape[1:],
    lambda m: m.ones(2).shape[::-1], lambda m: m.Size([m.tensor(2), 3]), lambda m: m.Size([2.5]),
    lambda m: m.Size([m.tensor(2.0)]), lambda m: m.Size(), lambda m: m.Size([2]) * 0,
], ids=lambda f: "")
def test_size_arithmetic_and_items(expr):
    """tuple arithmetic on a Size keeps the Size type (repr 'Size([...])'); items must be ints."""
    same(lambda m: repr(expr(m)))
    same(lambda m: type(expr(m)).__name__)


def test_size_concatenates_only_tuples():
    raises_same(lambda m: m.Size([2]) + [3], "can only concatenate tuple (not list) to torch.Size")
    raises_same(lambda m: [3] + m.Size([2]), "can only concatenate list")


# ---- legacy constructors and types ----------------------------------------------------------------------
@pytest.mark.parametrize("args", ["size_obj", 3.5, True, "float_tensor_size"])
def test_legacy_constructor_arguments(args):
    def fn(m):
        if args == "size_obj":
            return m.Tensor(m.ones(2, 3).shape).shape
        if args == "float_tensor_size":
            return m.FloatTensor(m.Size([2])).shape
        return m.Tensor(args)
    same(fn)


@pytest.mark.parametrize("cls", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "ByteTensor",
                                 "BoolTensor", "HalfTensor"])
@pytest.mark.parametrize("name", ["float32", "int64", "bool"])
def test_legacy_types_in_isinstance_and_type(cls, name):
    """isinstance(x, torch.FloatTensor) asks for the dtype; x.type(torch.DoubleTensor) converts."""
    same(lambda m: isinstance(m.ones(2, dtype=getattr(m, name)), getattr(m, cls)))
    same(lambda m: str(m.ones(2, dtype=getattr(m, name)).type(getattr(m, cls)).dtype))
    same(lambda m: m.ones(2, dtype=getattr(m, name)).type(getattr(m, cls)).type())


# ---- assigning .grad ------------------------------------------------------------------------------------
def test_grad_assignment_errors():
    raises_same(lambda m: setattr(m.ones(2, requires_grad=True), "grad", m.ones(2, 3)),
                "attempting to assign a gradient of size '[2, 3]' to a tensor of size '[2]'")
    raises_same(lambda m: setattr(m.ones(2, requires_grad=True), "grad", m.ones(2, dtype=m.float64)),
                "attempting to assign a gradient with dtype 'double' to a tensor with grad_dtype 'Float'")


# ---- NumPy on the left of an operator ----------------------------------------------------------------
@pytest.mark.parametrize("op, left", [(op, left) for op in ["mul", "add", "sub", "truediv", "matmul", "pow"]
                                      for left in ["np_f64_scalar", "np_i64_scalar"]]
                         + [("mul", "np_array"), ("sub", "np_array"), ("matmul", "np_array")])
def test_numpy_on_the_left(op, left):
    """torch's __array_priority__ makes NumPy defer to the tensor: np.float64(2) * x is a tensor of
    x's dtype (NumPy computed a float64 ndarray), and an ndarray on the left is a TypeError."""
    import operator

    def fn(m):
        x = m.ones(2, 2)
        a = {"np_f64_scalar": np.float64(2.0), "np_i64_scalar": np.int64(3),
             "np_array": np.ones((2, 2), dtype=np.float32)}[left]
        r = getattr(operator, op)(a, x)
        return type(r).__name__, r
    if left == "np_array" or op == "matmul":  # refused: the same error type (Python words the message)
        ref, ours = both(fn)
        assert ref[:2] == ours[:2] == ("raised", "TypeError"), (ours, ref)
    else:
        same(fn)


# ---- dtype arguments ---------------------------------------------------------------------------------
PY_TYPE_DTYPE = {
    "tensor": lambda m, T: m.tensor([1, 0], dtype=T), "zeros": lambda m, T: m.zeros(2, dtype=T),
    "ones": lambda m, T: m.ones(2, dtype=T), "full": lambda m, T: m.full((2,), 1, dtype=T),
    "arange": lambda m, T: m.arange(3, dtype=T), "eye": lambda m, T: m.eye(2, dtype=T),
    "empty": lambda m, T: str(m.empty(2, dtype=T).dtype), "zeros_like": lambda m, T: m.zeros_like(m.ones(2), dtype=T),
    "full_like": lambda m, T: m.full_like(m.ones(2), 1, dtype=T), "to": lambda m, T: m.ones(2).to(T),
    "to_kw": lambda m, T: m.ones(2).to(dtype=T), "as_tensor": lambda m, T: m.as_tensor([1, 2], dtype=T),
    "linspace": lambda m, T: m.linspace(0, 1, 3, dtype=T), "logspace": lambda m, T: m.logspace(0, 1, 3, dtype=T),
    "randint": lambda m, T: str(m.randint(0, 1, (2,), dtype=T).dtype),
    "rand": lambda m, T: str(m.rand(2, dtype=T).dtype), "randn": lambda m, T: str(m.randn(2, dtype=T).dtype),
    "normal": lambda m, T: str(m.normal(0.0, 1.0, (2,), dtype=T).dtype),
    "randperm": lambda m, T: str(m.randperm(3, dtype=T).dtype),
}


@pytest.mark.parametrize("factory", list(PY_TYPE_DTYPE))
@pytest.mark.parametrize("pytype", [float, int, bool], ids=["float", "int", "bool"])
def test_python_type_as_dtype(factory, pytype):
    """torch reads dtype=float as float64, int as int64, bool as bool (we raised AttributeError), and
    refuses what it has no kernel for (arange/linspace/logspace/randperm in bool, normal in ints)."""
    same(lambda m: PY_TYPE_DTYPE[factory](m, pytype))
    tdt = {float: "float64", int: "int64", bool: "bool"}[pytype]
    same(lambda m: PY_TYPE_DTYPE[factory](m, getattr(m, tdt)))


# ---- operators with operands that are not tensors or numbers -------------------------------------------
FOREIGN = {"None": None, "str": "a", "list": [1.0, 1.0], "object": object()}
OPERATORS = ["eq", "ne", "lt", "ge", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow"]


@pytest.mark.parametrize("op, other", [(op, other) for op in OPERATORS for other in FOREIGN
                                       # (str and list meet sequence repetition/concatenation in torch)
                                       if op in ("eq", "ne") or other in ("None", "object")])
@pytest.mark.parametrize("side", ["right", "left"])
def test_operator_with_foreign_operand(op, other, side):
    """torch's operators return NotImplemented for such operands, so Python answers: `x == None` is
    False (we raised TypeError), `x != None` True, and `x + None` is Python's TypeError."""
    import operator

    def fn(m):
        x, o = m.ones(2), FOREIGN[other]
        return getattr(operator, op)(x, o) if side == "right" else getattr(operator, op)(o, x)
    if op in ("eq", "ne"):
        same(fn)
    else:
        raises_same(fn, "not supported" if op in ("lt", "ge") else "unsupported operand type(s) for")


def test_list_methods_compare_tensors_with_none():
    same(lambda m: [m.ones(2), None].index(None))
    same(lambda m: None in [m.ones(2), m.zeros(3)])
    same(lambda m: [m.ones(2), None].count(None))


# ---- sort / argsort / topk (were missing) ---------------------------------------------------------------
@pytest.mark.parametrize("name", DTYPES)
@pytest.mark.parametrize("layout", ["contig", "transposed", "sliced"])
@pytest.mark.parametrize("dim, descending", [(-1, False), (0, True), (1, False)])
def test_sort_argsort(name, layout, dim, descending, rng):
    # distinct values (a permutation), so that every sort order is the same one
    perm = np.random.default_rng(int(rng.integers(1 << 30))).permutation(12).reshape(3, 4)
    a, b = make_pair((3, 4), name, layout, rng)
    with torch.no_grad():
        b.copy_(torch.from_numpy(perm % 2 == 0 if name == "bool" else perm).to(b.dtype))
    a.copy_(tracegrad.tensor(perm % 2 == 0 if name == "bool" else perm).to(a.dtype))
    check_op("sort", lambda L, x: L.sort(x, dim=dim, descending=descending, stable=True), [(a, b)], exact=True)
    check_op("argsort", lambda L, x: x.argsort(dim=dim, descending=descending, stable=True), [(a, b)])
    if name != "bool":
        check_op("topk", lambda L, x: x.topk(2, dim=dim, largest=descending), [(a, b)], exact=True)


def test_sort_nan_and_ties():
    """NaN sorts above every number; a stable sort keeps ties in index order, descending too."""
    vals = [[1.5, math.nan, 3.0, 1.5], [4.0, -math.inf, 4.0, math.nan]]
    for descending in (False, True):
        same(lambda m: m.tensor(vals).sort(descending=descending, stable=True))
        same(lambda m: m.tensor(vals).argsort(dim=0, descending=descending, stable=True))


def test_sort_topk_edges_and_errors():
    same(lambda m: m.tensor(2.0).sort())
    same(lambda m: m.tensor(3.0).topk(1))
    same(lambda m: m.ones(0).sort())
    same(lambda m: m.tensor([3.0, 1.0, 2.0]).topk(0))
    same(lambda m: repr(m.tensor([3.0, 1.0]).sort()))
    same(lambda m: repr(m.tensor([3.0, 1.0, 2.0]).topk(2)))
    same(lambda m: m.msort(m.tensor([[3.0, 1.0], [0.0, 2.0]])))
    raises_same(lambda m: m.tensor([3.0, 1.0, 2.0]).topk(4))
    raises_same(lambda m: m.tensor([3.0, 1.0, 2.0]).topk(-1))
    raises_same(lambda m: m.ones(3).sort(dim=1))


@pytest.mark.parametrize("fn", ["sort", "sort_stable", "topk", "topk_smallest"])
def test_sort_topk_gradients(fn):
    """The values carry the gradient back to where each came from, under torch's node names."""
    def run(m):
        x = m.tensor([[3.0, 1.0, 2.0, 0.5], [0.0, 5.0, 4.0, -1.0]], requires_grad=True)
        v = {"sort": lambda: x.sort(descending=True).values,
             "sort_stable": lambda: x.sort(dim=0, stable=True).values,
             "topk": lambda: x.topk(2).values, "topk_smallest": lambda: x.topk(1, dim=0, largest=False).values}[fn]()
        ((v + 1) ** 2).mean().backward()
        return type(v.grad_fn).__name__, x.grad
    same(run)


# ---- copy protocol and small predicates --------------------------------------------------------------------
def test_copy_shares_storage_and_deepcopy_needs_a_leaf():
    """copy.copy(x) is a new tensor over x's storage in torch (we copied the data); deepcopy of a
    non-leaf is torch's RuntimeError (we copied it, history and all)."""
    import copy

    same(lambda m: (lambda x: (copy.copy(x).add_(1), x)[1])(m.ones(2)))
    same(lambda m: (lambda y: (y.requires_grad, y.is_leaf))(copy.copy(m.ones(2, requires_grad=True))))
    same(lambda m: (lambda x: (copy.deepcopy(x).add_(1), x)[1])(m.ones(2)))
    raises_same(lambda m: copy.deepcopy(m.ones(2, requires_grad=True) * 2), "Only Tensors created explicitly by "
                "the user (graph leaves) support the deepcopy protocol")


@pytest.mark.parametrize("expr", [
    lambda m: m.ones(2, 3).is_same_size(m.zeros(2, 3)), lambda m: m.ones(2, 3).is_same_size(m.zeros(3, 2)),
    lambda m: m.tensor([1.0]).is_nonzero(), lambda m: m.tensor([0]).is_nonzero(),
    lambda m: m.tensor([1.0, 2.0]).is_nonzero(), lambda m: m.tensor([]).is_nonzero(),
    lambda m: m.ones(2, 3, 4).dim_order(), lambda m: m.ones(2, 3, 4).permute(2, 0, 1).dim_order(),
    lambda m: m.ones(3, 1).t().dim_order(), lambda m: m.ones(2, 1, 3).dim_order(),
], ids=lambda f: "")
def test_tensor_predicates(expr):
    same(expr)
