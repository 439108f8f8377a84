"""Reductions against torch: sum mean prod max min amax amin argmax argmin std var norm logsumexp any all
cumsum cumprod, over every dtype, `dim` as None / int / negative int / tuple, with and without keepdim,
on contiguous and non-contiguous inputs, empty tensors and 0-d tensors.

`max(dim)` and `min(dim)` must return torch's named tuple (values, indices). Where torch refuses an input
(the mean of an integer tensor, a reduction over an empty dim with no identity), we must refuse it with the
same exception type.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import tracegrad
from util import DTYPES, LAYOUTS, check_op, make_pair

pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              # torch and we both warn about this (test_dof_warning checks that we do)
              pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")]

# name -> fn(L, x, dim, keepdim); dim is None for "no dim argument"
REDUCTIONS = {
    "sum": lambda L, x, d, k: x.sum() if d is None else L.sum(x, d, keepdim=k),
    "mean": lambda L, x, d, k: L.mean(x) if d is None else x.mean(d, keepdim=k),
    "nansum": lambda L, x, d, k: L.nansum(x) if d is None else L.nansum(x, d, keepdim=k),
    "prod": lambda L, x, d, k: L.prod(x) if d is None else L.prod(x, d, keepdim=k),
    "max": lambda L, x, d, k: L.max(x) if d is None else L.max(x, d, keepdim=k),
    "min": lambda L, x, d, k: x.min() if d is None else x.min(d, k),
    "amax": lambda L, x, d, k: L.amax(x) if d is None else L.amax(x, d, keepdim=k),
    "amin": lambda L, x, d, k: x.amin() if d is None else x.amin(dim=d, keepdim=k),
    "argmax": lambda L, x, d, k: L.argmax(x) if d is None else L.argmax(x, d, keepdim=k),
    "argmin": lambda L, x, d, k: x.argmin() if d is None else x.argmin(dim=d, keepdim=k),
    "std": lambda L, x, d, k: L.std(x) if d is None else L.std(x, d, keepdim=k),
    "var": lambda L, x, d, k: x.var() if d is None else x.var(d, keepdim=k),
    "var_unbiased_false": lambda L, x, d, k: L.var(x, unbiased=False) if d is None else L.var(x, d, unbiased=False,
                                                                                           keepdim=k),
    "std_correction0": lambda L, x, d, k: L.std(x, d, correction=0, keepdim=k),
    "var_mean": lambda L, x, d, k: L.var_mean(x) if d is None else L.var_mean(x, d, keepdim=k),
    "std_mean": lambda L, x, d, k: L.std_mean(x, d, keepdim=k),
    "norm": lambda L, x, d, k: L.norm(x) if d is None else L.norm(x, dim=d, keepdim=k),
    "norm_p1": lambda L, x, d, k: x.norm(p=1, dim=d, keepdim=k),
    "norm_p3": lambda L, x, d, k: x.norm(3, d, k),
    "norm_inf": lambda L, x, d, k: L.norm(x, float("inf"), dim=d, keepdim=k),
    "logsumexp": lambda L, x, d, k: L.logsumexp(x, d if d is not None else tuple(range(x.ndim)), keepdim=k),
    "any": lambda L, x, d, k: L.any(x) if d is None else L.any(x, d, keepdim=k),
    "all": lambda L, x, d, k: x.all() if d is None else x.all(d, keepdim=k),
    "sum_dtype": lambda L, x, d, k: L.sum(x, d, keepdim=k, dtype=L.float64),
    "mean_dtype": lambda L, x, d, k: L.mean(x, d, keepdim=k, dtype=L.float64),
    "sum_then_op": lambda L, x, d, k: (x.sum(d, keepdim=k) if d is not None else x.sum()) * 2,
}
# dims per reduction kind: max/min/argmax take one int dim; the rest take tuples too
SINGLE_DIM = {"max", "min", "argmax", "argmin"}
DIMS = [None, 0, -1, 1, (0, 2), (-1, 0), (0, 1, 2)]

SCANS = {
    "cumsum": lambda L, x, d: L.cumsum(x, d),
    "cumsum_method": lambda L, x, d: x.cumsum(dim=d),
    "cumsum_dtype": lambda L, x, d: L.cumsum(x, d, dtype=L.float64),
    "cumprod": lambda L, x, d: L.cumprod(x, d),
}


def _dims_for(op):
    out = []
    for d in DIMS:
        if op in SINGLE_DIM and isinstance(d, tuple):
            continue
        if op == "std_correction0" and d is None:
            continue
        out.append(d)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(REDUCTIONS))
def test_reduction(op, dtype, rng, seed):
    fn = REDUCTIONS[op]
    for layout in ("contig", "transposed", "permuted", "sliced", "expanded"):
        x = make_pair((3, 4, 5), dtype, layout, rng, "small" if op == "prod" else "any")
        for d in _dims_for(op):
            for k in (False, True):
                check_op(op, lambda L, x: fn(L, x, d, k), [x], seed=seed, layout=layout, dim=d, keepdim=k)


@pytest.mark.parametrize("op", list(REDUCTIONS))
@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 0), (0, 3, 1), (1, 1, 1), (7,)])
def test_reduction_shapes(op, shape, rng, seed):
    """0-d tensors, empty tensors (sums are 0, means nan, max refuses) and size-1 dims."""
    fn = REDUCTIONS[op]
    for dtype in ("float32", "int64", "bool"):
        x = make_pair(shape, dtype, "contig", rng)
        nd = max(len(shape), 1)
        for d in (None, 0, -1, tuple(range(len(shape)))):
            if isinstance(d, int) and d >= nd:
                continue
            if op in SINGLE_DIM and isinstance(d, tuple) or op == "std_correction0" and d is None:
                continue
            for k in (False, True):
                check_op(op, lambda L, x: fn(L, x, d, k), [x], seed=seed, dim=d, keepdim=k)


def test_max_min_named_tuples(rng, seed):
    """max/min over a dim return (values, indices) named tuples that unpack and index like torch's."""
    x = make_pair((3, 4), "float32", "contig", rng)
    for name in ("max", "min"):
        ours, theirs = getattr(x[0], name)(1), getattr(x[1], name)(1)
        assert type(ours).__name__ == type(theirs).__name__ == name
        assert ours._fields == type(theirs).__match_args__ == ("values", "indices")
        v, i = ours
        check_op(name + " fields", lambda L, x: getattr(L, name)(x, dim=0, keepdim=True).indices, [x])
        check_op(name + " [0]", lambda L, x: getattr(x, name)(0)[0], [x])
        assert v is ours.values and i is ours.indices
        assert repr(ours).startswith(f"tracegrad.return_types.{name}(")
    for name in ("var_mean", "std_mean"):
        ours = getattr(tracegrad, name)(x[0], 0)
        assert isinstance(ours, tuple) and len(ours) == 2


def test_ties_and_nan(rng, seed):
    """argmax/max pick the first of equal values; nan wins max/min and argmax (torch propagates it)."""
    vals = np.array([[1.0, 3.0, 3.0, 0.0], [np.nan, 2.0, np.nan, 5.0], [2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    x = (tracegrad.tensor(vals), torch.tensor(vals))
    for op in ("max", "min", "argmax", "argmin", "amax", "amin", "sum", "mean", "std", "logsumexp", "norm", "prod",
               "nansum"):
        for d in (None, 0, 1):
            if op == "logsumexp" and d is None:
                continue
            check_op(op, lambda L, x: REDUCTIONS[op](L, x, d, False), [x], dim=d)
    inf = np.array([[np.inf, -np.inf, 1.0], [np.inf, np.inf, -np.inf]], dtype=np.float64)
    x = (tracegrad.tensor(inf), torch.tensor(inf))
    for op in ("logsumexp", "sum", "mean", "max", "argmin", "norm", "std"):
        check_op(op, lambda L, x: REDUCTIONS[op](L, x, 1, False), [x])


@pytest.mark.parametrize("name", ["std", "var"])
def test_dof_warning(name):
    """Like torch, var/std with no degrees of freedom warn (and give nan)."""
    with pytest.warns(UserWarning, match=f"{name}\\(\\): degrees of freedom is <= 0"):
        r = getattr(tracegrad.zeros(1), name)()
    assert r.isnan().item()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(SCANS))
def test_scan(op, dtype, rng, seed):
    fn = SCANS[op]
    for layout in ("contig", "transposed", "sliced", "expanded"):
        x = make_pair((3, 4, 2), dtype, layout, rng, "small")
        for d in (0, 1, -1):
            check_op(op, lambda L, x: fn(L, x, d), [x], seed=seed, layout=layout, dim=d)
    for shape in ((), (0,), (5,)):
        check_op(op, lambda L, x: fn(L, x, 0), [make_pair(shape, dtype, "contig", rng, "small")], seed=seed)


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "prod", "argmax", "norm", "logsumexp", "any"])
def test_out(op, rng, seed):
    """out= on reductions: the result lands in the given tensor and it is returned."""
    x = make_pair((3, 4), "float32", "contig", rng)
    calls = {"sum": lambda L, x, o: L.sum(x, 1, out=o), "mean": lambda L, x, o: L.mean(x, 1, out=o),
             "amax": lambda L, x, o: L.amax(x, 1, out=o), "prod": lambda L, x, o: L.prod(x, 1, out=o),
             "argmax": lambda L, x, o: L.argmax(x, 1, out=o), "norm": lambda L, x, o: L.norm(x, dim=1, out=o),
             "logsumexp": lambda L, x, o: L.logsumexp(x, 1, out=o), "any": lambda L, x, o: L.any(x, 1, out=o)}
    out_dtype = {"argmax": "int64", "any": "bool"}.get(op, "float32")
    out = make_pair((3,), out_dtype, "contig", rng)
    check_op(op + " out=", lambda L, x, o: (calls[op](L, x, o) is o, o), [x, out], seed=seed)


# ---- random shapes, dims and layouts ---------------------------------------------------------------
@st.composite
def reduction_case(draw):
    nd = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=nd, max_size=nd)))
    op = draw(st.sampled_from(sorted(REDUCTIONS)))
    if nd == 0 or draw(st.booleans()):
        dim = None if op != "std_correction0" else ()
    elif op in SINGLE_DIM or draw(st.booleans()):
        dim = draw(st.integers(-nd, nd - 1))
    else:
        dim = tuple(draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique_by=lambda d: d % nd)))
    return op, shape, dim


@given(case=reduction_case(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(sorted(LAYOUTS)),
       keepdim=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_reduction_random(case, dtype, layout, keepdim, seed):
    op, shape, dim = case
    x = make_pair(shape, dtype, layout, np.random.default_rng(seed), "small" if op == "prod" else "any")
    check_op(op, lambda L, x: REDUCTIONS[op](L, x, dim, keepdim), [x], seed=seed, layout=layout, dim=dim,
             keepdim=keepdim)
