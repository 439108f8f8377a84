"""Indexing against torch, on both sides of `=`: ints, slices with steps, None, `...`, bool masks,
integer tensors and lists (advanced indexing copies, basic indexing views), and index_select, gather,
scatter, scatter_add, masked_fill, masked_select, nonzero, take, index_put_, index_fill, index_add.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import tracegrad
from cuda_device import cuda_device
from util import LAYOUTS, WRITABLE_LAYOUTS, assert_same, check_op, describe, make_pair, pair_from, run_both, shares

pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              # deprecations torch warns about (test_uint8_mask_warns checks that we do too)
              pytest.mark.filterwarnings("ignore:indexing with dtype torch.uint8:UserWarning"),
              pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter:UserWarning")]


def test_uint8_mask_warns():
    x = tracegrad.arange(4)
    with pytest.warns(UserWarning, match="indexing with dtype torch.uint8 is now deprecated"):
        r = x[tracegrad.tensor([1, 0, 1, 0], dtype=tracegrad.uint8)]
    assert r.tolist() == [0, 2]


def _idx(L, spec):
    """Build an index in library L from a spec (tensors described as ('t', values, dtype))."""
    if isinstance(spec, tuple) and spec and spec[0] == "t":
        return L.tensor(spec[1], dtype=getattr(L, spec[2]))
    if isinstance(spec, tuple):
        return tuple(_idx(L, s) for s in spec)
    return spec


# index specs on a (4, 5, 6) tensor
INDICES = {
    "int": 1, "neg_int": -1, "slice": slice(1, 3), "slice_step": slice(None, None, 2), "slice_neg": slice(-3, None),
    "slice_empty": slice(3, 1), "slice_over": slice(2, 100), "tuple_ints": (1, 2), "tuple_mixed": (1, slice(None, 4, 3)),
    "none": None, "none_middle": (slice(None), None, 1), "ellipsis": ..., "ellipsis_int": (..., 2),
    "ellipsis_middle": (1, ..., 3), "all_ints": (3, 4, 5), "full_slices": (slice(None), slice(None), slice(None)),
    "int_tensor": ("t", [0, 2, 3], "int64"), "int_tensor_2d": ("t", [[0, 1], [3, 3]], "int64"),
    "int32_tensor": ("t", [1, 0], "int32"), "list": [0, 3], "list_neg": [-1, 0, -2],
    "bool_mask_dim0": ("t", [True, False, True, True], "bool"),
    "bool_mask_full": ("t", (np.arange(120).reshape(4, 5, 6) % 3 == 0).tolist(), "bool"),
    "bool_mask_2d": ("t", (np.arange(20).reshape(4, 5) % 2 == 0).tolist(), "bool"),
    "two_int_tensors": (("t", [0, 2], "int64"), ("t", [1, 4], "int64")),
    "broadcast_int_tensors": (("t", [[0], [2]], "int64"), ("t", [1, 4, 0], "int64")),
    "adv_slice_adv": (("t", [0, 2], "int64"), slice(None), ("t", [1, 3], "int64")),  # separated: to the front
    "slice_adv_adv": (slice(1, 3), ("t", [0, 2], "int64"), ("t", [1, 5], "int64")),
    "int_and_tensor": (1, ("t", [0, 4], "int64")),
    "int_slice_tensor": (2, slice(None), ("t", [5, 0], "int64")),
    "none_and_tensor": (None, ("t", [1, 2], "int64")),
    "ellipsis_tensor": (..., ("t", [0, 5], "int64")),
    "mask_and_slice": (("t", [True, False, True, False], "bool"), slice(1, 4)),
    "zero_dim_int_tensor": ("t", 2, "int64"), "bool_true": True, "bool_false": False,
    "uint8_mask": ("t", [1, 0, 1, 0], "uint8"),
    "empty_list": ("t", [], "int64"),
}


@pytest.mark.parametrize("name", list(INDICES))
def test_getitem(name, rng, seed):
    spec = INDICES[name]
    for layout in ("contig", "transposed", "sliced", "expanded"):
        for dtype in ("float32", "int16", "bool"):
            x = make_pair((4, 5, 6), dtype, layout, rng)
            ctx = describe("getitem " + name, [x[0]], seed, layout=layout)
            ours, theirs, exc = run_both(lambda L, x: x[_idx(L, spec)], [x[0]], [x[1]], ctx)
            if exc is not None:
                continue
            assert_same(ours, theirs, ctx, strides=True)
            if theirs.numel():
                assert shares(ours, x[0]) == shares(theirs, x[1]), f"storage sharing differs\n  {ctx}"


@pytest.mark.parametrize("name", list(INDICES))
@pytest.mark.parametrize("value", ["scalar", "tensor", "broadcast", "other_dtype"])
def test_setitem(name, value, rng, seed):
    """x[index] = value writes into x (and its base) exactly as torch does."""
    spec = INDICES[name]
    for layout in ("contig", "transposed"):
        base = make_pair(LAYOUTS[layout]((4, 5, 6))[0], "float32", "contig", rng)
        view = LAYOUTS[layout]((4, 5, 6))[1]
        xo, xt = view(base[0]), view(base[1])
        target_shape = tuple(xt[_idx(torch, spec)].shape)
        if value == "scalar":
            v = (-7.5, -7.5)
        elif value == "tensor":
            v = make_pair(target_shape, "float32", "contig", rng)
        elif value == "broadcast":
            v = make_pair(target_shape[-1:], "float32", "contig", rng)
        else:
            v = make_pair(target_shape, "int64", "contig", rng)
        ctx = describe("setitem " + name, [xo], seed, layout=layout, value=value)

        def assign(L, x, v):
            x[_idx(L, spec)] = v
            return x

        ours, theirs, exc = run_both(assign, [xo, v[0]], [xt, v[1]], ctx)
        if exc is not None:
            continue
        assert ours is xo
        assert_same(xo, xt, ctx, strides=True)
        assert_same(base[0], base[1], ctx + "\n  (the base)", strides=True)
        assert xo._version == xt._version, f"_version {xo._version} != torch's {xt._version}\n  {ctx}"


def test_setitem_with_tensor_on_both_sides(rng):
    """x[mask] = y[mask], x[idx] += 1 (a read-modify-write through advanced indexing), chained views."""
    x = make_pair((5, 4), "float32", "contig", rng)
    y = make_pair((5, 4), "float32", "contig", rng)

    def f(L, x, y):
        x = x.clone()
        m = y > 0
        x[m] = y[m]
        x[L.tensor([0, 2])] += 1
        x[1:3][:, ::2] = -1.0
        x[..., 0][x[..., 0] < 0] = 100.0
        x[:, 1] *= 2
        x[0] = y[:1]  # a value with leading size-1 dims: torch drops them
        x[[1, 2]] = y[None, 3:5]
        x[x > 100] = L.tensor([[7.0]])  # a one-element value with a mask: masked_fill_
        return x

    check_op("mixed setitem", f, [x, y], strides=True)


# ---- the named indexing ops --------------------------------------------------------------------
def _ix(L, values):
    return L.tensor(values, dtype=L.int64)


OPS = {
    "index_select_0": lambda L, x: L.index_select(x, 0, _ix(L, [3, 0, 0, 1])),
    "index_select_neg": lambda L, x: x.index_select(-1, _ix(L, [5, 1])),
    "index_select_int32": lambda L, x: x.index_select(1, L.tensor([4, 2], dtype=L.int32)),
    "index_select_empty": lambda L, x: x.index_select(1, _ix(L, [])),
    "gather_0": lambda L, x: L.gather(x, 0, _ix(L, [[[0, 1], [3, 3]], [[2, 0], [1, 1]]])),
    "gather_last": lambda L, x: x.gather(-1, _ix(L, [[[5, 0, 1]] * 5] * 4)),
    "gather_smaller": lambda L, x: x.gather(1, _ix(L, [[[0]], [[4]]])),
    "scatter_src": lambda L, x: x.scatter(0, _ix(L, [[[1, 0, 3]]]), x[:1, :1, :3] * 10),
    "scatter_value": lambda L, x: L.scatter(x, 2, _ix(L, [[[1, 5]], [[0, 0]]]), 7),
    "scatter_reduce_add": lambda L, x: x.scatter(1, _ix(L, [[[1, 1]], [[2, 2]]]), x[:2, :1, :2] * 0 + 1,
                                                 reduce="add"),
    "scatter_reduce_mul": lambda L, x: x.scatter(1, _ix(L, [[[0, 3]]]), x[:1, :1, :2] * 0 + 2, reduce="multiply"),
    "scatter_add": lambda L, x: L.scatter_add(x, 1, _ix(L, [[[0, 0, 4]], [[1, 1, 1]]]), x[:2, :1, :3]),
    "scatter_add_dups": lambda L, x: x.scatter_add(0, _ix(L, [[[0, 0], [0, 0]]]), x[:1, :2, :2]),
    "masked_fill_scalar": lambda L, x: x.masked_fill(x > 0, -1),
    "masked_fill_broadcast": lambda L, x: L.masked_fill(x, L.tensor([True, False, True, False, False, True]), 2.5),
    "masked_fill_0d": lambda L, x: x.masked_fill(x < 0, L.tensor(9)),
    "masked_select": lambda L, x: L.masked_select(x, x > 0),
    "masked_select_broadcast": lambda L, x: x.masked_select(L.tensor([True, False, False, True, False, True])),
    "nonzero": lambda L, x: L.nonzero(x > 0),
    "nonzero_tuple": lambda L, x: (x > 0).nonzero(as_tuple=True),
    "argwhere": lambda L, x: L.argwhere(x),
    "where_1arg": lambda L, x: L.where(x > 1),
    "take": lambda L, x: L.take(x, _ix(L, [[0, 119], [5, -1]])),
    "index_put": lambda L, x: x.index_put((_ix(L, [0, 2]), _ix(L, [1, 1])), L.tensor(5, dtype=x.dtype)),
    "index_put_acc": lambda L, x: x.index_put((_ix(L, [0, 0, 2]),), x[:3].clone(), accumulate=True),
    "index_fill": lambda L, x: x.index_fill(1, _ix(L, [0, 3]), -2),
    "index_add": lambda L, x: x.index_add(0, _ix(L, [1, 1, 3]), x[:3].clone()),
    "index_add_alpha": lambda L, x: L.index_add(x, 2, _ix(L, [0, 5]), x[..., :2].clone(), alpha=3),
}


@pytest.mark.parametrize("op", list(OPS))
def test_indexing_ops(op, rng, seed):
    fn = OPS[op]
    for dtype in ("float32", "float64", "int32", "bool", "bfloat16", "float16"):
        for layout in ("contig", "transposed", "sliced", "expanded"):
            x = make_pair((4, 5, 6), dtype, layout, rng)
            check_op(op, fn, [x], seed=seed, layout=layout, sharing=0, strides="contiguous")


INPLACE_OPS = {
    "index_put_": lambda L, x: x.index_put_((_ix(L, [0, 2]),), L.tensor(-3.0)),
    "index_put_acc_": lambda L, x: x.index_put_((_ix(L, [1, 1, 0]), _ix(L, [2, 2, 2])),
                                                L.tensor([[1.0], [2.0], [4.0]]), accumulate=True),
    "scatter_": lambda L, x: x.scatter_(1, _ix(L, [[[0, 2]]]), 5.0),
    "scatter_add_": lambda L, x: x.scatter_add_(0, _ix(L, [[[1, 1]]]), L.ones(1, 1, 2)),
    "masked_fill_": lambda L, x: x.masked_fill_(x > 0.5, 0.0),
    "index_fill_": lambda L, x: x.index_fill_(2, _ix(L, [5]), 1.5),
    "index_add_": lambda L, x: x.index_add_(1, _ix(L, [4, 0]), L.ones(4, 2, 6)),
    "fill_": lambda L, x: x.fill_(3),
    "fill_0d": lambda L, x: x.fill_(L.tensor(2.5)),
    "zero_": lambda L, x: x.zero_(),
    "copy_": lambda L, x: x.copy_(L.arange(6.0)),
    "copy_int": lambda L, x: x.copy_(L.arange(6)),
}


@pytest.mark.parametrize("op", list(INPLACE_OPS))
def test_indexing_inplace(op, rng, seed):
    """The in-place forms return self, write into the base through views, and bump _version once."""
    fn = INPLACE_OPS[op]
    for layout in WRITABLE_LAYOUTS:
        base_shape, view = LAYOUTS[layout]((4, 5, 6))
        base = make_pair(base_shape, "float32", "contig", rng)
        xo, xt = view(base[0]), view(base[1])
        v0 = xo._version, xt._version
        ctx = describe(op, [xo], seed, layout=layout)
        ro, rt = fn(tracegrad, xo), fn(torch, xt)
        assert (ro is xo) and (rt is xt), ctx
        assert xo._version - v0[0] == xt._version - v0[1], f"_version bumps differ\n  {ctx}"
        assert_same(xo, xt, ctx, strides=True)
        assert_same(base[0], base[1], ctx + "\n  (base)", strides=True)


# ---- random indices ----------------------------------------------------------------------------
@st.composite
def index_case(draw):
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    idx = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "tensor", "list", "mask", "none", "full"]))
        if kind == "int":
            idx.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            idx.append(slice(draw(st.integers(-n, n)), draw(st.integers(-n, n)), draw(st.integers(1, 3))))
        elif kind == "tensor":
            k = draw(st.integers(0, 3))
            idx.append(("t", draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k)), "int64"))
        elif kind == "list":
            idx.append(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=3)))
        elif kind == "mask":
            idx.append(("t", draw(st.lists(st.booleans(), min_size=n, max_size=n)), "bool"))
        elif kind == "none":
            idx.extend([None, slice(None)])
        else:
            idx.append(slice(None))
    cut = draw(st.integers(0, len(idx)))
    return shape, tuple(idx[:cut])


@given(case=index_case(), layout=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2 ** 31))
def test_getitem_setitem_random(case, layout, seed):
    shape, spec = case
    rng = np.random.default_rng(seed)
    x = make_pair(shape, "float32", layout, rng)
    ctx = describe("getitem", [x[0]], seed, layout=layout, index=spec)
    ours, theirs, exc = run_both(lambda L, x: x[_idx(L, spec)], [x[0]], [x[1]], ctx)
    if exc is not None:
        return
    assert_same(ours, theirs, ctx, strides="nontrivial")
    if theirs.numel():
        assert shares(ours, x[0]) == shares(theirs, x[1]), f"storage sharing differs\n  {ctx}"
    if layout == "expanded":
        return
    # assignment of a broadcast value, through the same index (no duplicate positions: torch leaves the
    # winner among duplicates unspecified)
    has_dups = any(isinstance(s, (list, tuple)) and s and (s[0] == "t" and len(set(
        np.ravel(s[1]) % max(n, 1))) < len(np.ravel(s[1])) or s[0] != "t" and len(set(np.array(s) % n)) < len(s))
                   for s, n in zip([s for s in spec if s is not None], shape))
    if has_dups or sum(isinstance(s, (list, tuple)) for s in spec) > 1:
        return
    v = make_pair(tuple(theirs.shape)[-1:], "float32", "contig", rng)

    def assign(L, x, v):
        x[_idx(L, spec)] = v
        return x

    ours, theirs, exc = run_both(assign, [x[0], v[0]], [x[1], v[1]], ctx)
    if exc is None:
        assert_same(x[0], x[1], ctx + "\n  (after assignment)", strides=True)


def test_masks_next_to_an_ellipsis():
    """A mask indexes as many dims as it has, so `...` stands for the rest (x[..., mask2d])."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for shape in ((4,), (3, 4), (2, 3, 4)):
        m = rng.random(shape) > 0.5
        for f in (lambda x, m: x[..., m], lambda x, m: x[m, ...], lambda x, m: x[..., m, None]):
            try:
                want = f(torch.tensor(a), torch.tensor(m))
            except IndexError:
                with pytest.raises(IndexError):
                    f(tracegrad.tensor(a), tracegrad.tensor(m))
                continue
            got = f(tracegrad.tensor(a), tracegrad.tensor(m))
            assert tuple(got.shape) == tuple(want.shape) and np.array_equal(got.numpy(), want.numpy()), shape


def test_a_zero_dim_mask_indexes_like_a_python_bool():
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    for v in (True, False):
        for f in (lambda x, m: x[m], lambda x, m: x[m, 0], lambda x, m: x[0, m]):
            got, want = f(tracegrad.tensor(a), tracegrad.tensor(v)), f(torch.tensor(a), torch.tensor(v))
            assert tuple(got.shape) == tuple(want.shape) and np.array_equal(got.numpy(), want.numpy())
        y, ty = tracegrad.tensor(a), torch.tensor(a)
        y[tracegrad.tensor(v)] = 9.0
        ty[torch.tensor(v)] = 9.0
        assert np.array_equal(y.numpy(), ty.numpy())


def test_zero_dim_gather_and_scatter_are_one_node_named_as_in_torch():
    """0-d tensors gather/scatter as vectors, inside the op: the node is GatherBackward0 (etc.), not a
    reshape's ViewBackward0, and gradients match; gather's out= is written."""
    for dev in ("cpu", "cuda"):
        with cuda_device() if dev == "cuda" else contextlib.nullcontext():
            results = []
            for L in (tracegrad, torch):
                x = L.tensor(3.0, requires_grad=True, device=dev if L is tracegrad else "cpu")
                v = L.tensor([1.0, 2.0, 3.0], requires_grad=True, device=x.device)
                i, ii = L.tensor(0, device=x.device), L.tensor([0, 0], device=x.device)
                outs = [L.gather(x, 0, i), x.scatter(0, i, L.tensor(5.0, device=x.device)), x.scatter(0, i, 7.0),
                        L.scatter_add(x, 0, i, L.tensor(5.0, device=x.device)), L.gather(v, 0, i),
                        L.gather(x, 0, ii)]
                sum(o.sum() for o in outs).backward()
                results.append(([type(o.grad_fn).__name__ for o in outs], [o.tolist() for o in outs],
                                x.grad.tolist(), v.grad.tolist()))
            assert results[0] == results[1], dev
    for L in (tracegrad, torch):  # a 0-d input with a longer index, and a 0-d src under a 1-d index
        results = []
        x, s = L.tensor(5.0, requires_grad=True), L.tensor(7.0, requires_grad=True)
        results.append([t.item() for t in L.autograd.grad(L.scatter_add(x, 0, L.tensor([0]), s), [x, s])])
        results.append(L.scatter_add(L.tensor(5.0), 0, L.tensor([0, 0]), L.tensor([7.0, 8.0])).item())
        results.append(L.scatter(L.tensor(5.0), 0, L.tensor([0, 0]), L.tensor([7.0, 8.0])).item())
        with pytest.raises(RuntimeError, match="Index tensor must have the same number of dimensions"):
            L.gather(L.tensor(5.0), 0, L.tensor([[0]]))
        if L is tracegrad:
            ours = results
    assert ours == results
    # only src[0] is scattered: its gradient is [1, 0] (torch itself refuses this backward)
    x, s = tracegrad.tensor(5.0, requires_grad=True), tracegrad.tensor([7.0, 8.0], requires_grad=True)
    assert [t.tolist() for t in tracegrad.autograd.grad(tracegrad.scatter_add(x, 0, tracegrad.tensor(0), s),
                                                         [x, s])] == [1.0, [1.0, 0.0]]
    o, to = tracegrad.zeros(2), torch.zeros(2)
    r = tracegrad.gather(tracegrad.tensor([1.0, 2.0]), 0, tracegrad.tensor([1, 0]), out=o)
    torch.gather(torch.tensor([1.0, 2.0]), 0, torch.tensor([1, 0]), out=to)
    assert r is o and o.tolist() == to.tolist()
