"""Views and shape ops against torch: storage sharing, strides, storage offsets, `_base`, version counters.

A view op must share its input's storage and give exactly torch's strides and offset; writes through the
view must show in the base and back; `reshape` and `contiguous` copy exactly when torch's do. The copying
shape ops (cat, stack, flip, repeat, clone...) must not share storage.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import tracegrad
from util import DTYPES, LAYOUTS, assert_same, check_op, describe, make_pair, shares

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# name -> fn(L, x) on a (4, 6, 5) input
VIEWS = {
    "view": lambda L, x: x.view(6, 4, 5),
    "view_infer": lambda L, x: x.view(-1, 5),
    "view_tuple": lambda L, x: x.view((2, 2, 30)),
    "view_flat": lambda L, x: x.view(-1),
    "view_split_last": lambda L, x: x.view(4, 6, 5, 1),
    "view_as": lambda L, x: x.view_as(L.zeros(24, 5)),
    "reshape": lambda L, x: x.reshape(24, 5),
    "reshape_flat": lambda L, x: L.reshape(x, (-1,)),
    "reshape_merge_first": lambda L, x: x.reshape(4, 30),
    "reshape_as": lambda L, x: x.reshape_as(L.zeros(2, 60)),
    "flatten": lambda L, x: x.flatten(),
    "flatten_range": lambda L, x: L.flatten(x, 1),
    "flatten_first": lambda L, x: x.flatten(0, 1),
    "unflatten": lambda L, x: x.unflatten(1, (2, 3)),
    "transpose": lambda L, x: x.transpose(0, 2),
    "transpose_neg": lambda L, x: L.transpose(x, -1, -2),
    "swapaxes": lambda L, x: x.swapaxes(0, 1),
    "permute": lambda L, x: x.permute(2, 0, 1),
    "permute_tuple": lambda L, x: L.permute(x, (1, 2, 0)),
    "movedim": lambda L, x: x.movedim(0, -1),
    "T_2d": lambda L, x: x[0].T,
    "mT": lambda L, x: x.mT,
    "t_2d": lambda L, x: x[:, 0].t(),
    "t_1d": lambda L, x: x[0, 0].t(),
    "unsqueeze": lambda L, x: x.unsqueeze(1),
    "unsqueeze_last": lambda L, x: L.unsqueeze(x, -1),
    "squeeze_noop": lambda L, x: x.squeeze(),
    "squeeze_dim": lambda L, x: x[:, :1].squeeze(1),
    "squeeze_all": lambda L, x: x[:1, :, :1].squeeze(),
    "squeeze_tuple": lambda L, x: x[:1, :, :1].squeeze((0, 2)),
    "squeeze_not1": lambda L, x: x.squeeze(0),
    "expand": lambda L, x: x[:, :1].expand(4, 3, 5),
    "expand_new_dims": lambda L, x: x[0].expand(2, 6, 5),
    "expand_minus1": lambda L, x: x[:, :1].expand(-1, 7, -1),
    "expand_as": lambda L, x: x[:1].expand_as(x),
    "broadcast_to": lambda L, x: L.broadcast_to(x[:, :1], (3, 4, 2, 5)),
    "narrow": lambda L, x: x.narrow(1, 2, 3),
    "narrow_neg": lambda L, x: L.narrow(x, -1, -3, 2),
    "select": lambda L, x: x.select(1, 3),
    "select_neg": lambda L, x: L.select(x, -1, -1),
    "as_strided": lambda L, x: x.as_strided((3, 3), (2, 1)),
    "as_strided_offset": lambda L, x: L.as_strided(x, (2, 2), (5, 1), 7),
    "diagonal": lambda L, x: x.diagonal(),
    "diagonal_offset": lambda L, x: L.diagonal(x, 1, 1, 2),
    "unfold": lambda L, x: x.unfold(1, 2, 2),
    "split": lambda L, x: x.split(2, 1),
    "split_sizes": lambda L, x: L.split(x, [1, 5], 1),
    "chunk": lambda L, x: x.chunk(4, 1),
    "chunk_uneven": lambda L, x: L.chunk(x, 3, -1),
    "tensor_split": lambda L, x: L.tensor_split(x, 4, 1),
    "unbind": lambda L, x: x.unbind(1),
    "unbind_fn": lambda L, x: L.unbind(x),
    "detach": lambda L, x: x.detach(),
    "alias_ellipsis": lambda L, x: x[...],
    "contiguous": lambda L, x: x.contiguous(),
    "data": lambda L, x: x.data,
    "view_dtype": lambda L, x: x.view(L.int32) if x.dtype == L.float32 else x.view(x.dtype),
}

# ops that copy: they must never share their input's storage
COPIES = {
    "clone": lambda L, x: x.clone(),
    "flip": lambda L, x: x.flip(0),
    "flip_many": lambda L, x: L.flip(x, (0, 2)),
    "fliplr": lambda L, x: L.fliplr(x),
    "flipud": lambda L, x: x.flipud(),
    "repeat": lambda L, x: x.repeat(2, 1, 1),
    "repeat_more_dims": lambda L, x: x.repeat(2, 1, 1, 2),
    "tile": lambda L, x: L.tile(x, (2,)),
    "cat": lambda L, x: L.cat([x, x], 1),
    "cat_neg": lambda L, x: L.cat((x, x[:, :2]), dim=-2),
    "concat": lambda L, x: L.concat([x, x]),
    "stack": lambda L, x: L.stack([x, x]),
    "stack_last": lambda L, x: L.stack([x, x, x], -1),
    "hstack": lambda L, x: L.hstack([x, x]),
    "vstack": lambda L, x: L.vstack([x, x]),
    "to_other_dtype": lambda L, x: x.to(L.float64 if x.dtype != L.float64 else L.float32),
    "to_same_dtype": lambda L, x: x.to(x.dtype),  # no copy: returns self
    "float": lambda L, x: x.float(),
    "long": lambda L, x: x.long(),
    "reshape_copy": lambda L, x: x.transpose(0, 1).reshape(-1),
}


def _check_view(name, fn, pair, seed, layout):
    ctx = describe(name, [pair[0]], seed, layout=layout)
    ours, theirs = check_op(name, fn, [pair], seed=seed, strides=True, layout=layout)
    if ours is None:
        return
    outs = ours if isinstance(ours, (tuple, list)) else [ours]
    touts = theirs if isinstance(theirs, (tuple, list)) else [theirs]
    for o, t in zip(outs, touts):
        if t.numel():  # torch's empty results may live anywhere
            assert shares(o, pair[0]) == shares(t, pair[1]), f"storage sharing differs\n  {ctx}"
            assert o.storage_offset() == t.storage_offset(), \
                f"storage_offset {o.storage_offset()} != {t.storage_offset()}\n  {ctx}"
        assert (o is pair[0]) == (t is pair[1]), f"returned self: ours {o is pair[0]}, torch {t is pair[1]}\n  {ctx}"
        if t._base is not None and t is not pair[1]:  # a view: its _base is the input's base
            want = pair[1]._base if pair[1]._base is not None else pair[1]
            got = pair[0]._base if pair[0]._base is not None else pair[0]
            assert (t._base is want) and (o._base is got), f"_base is not the input's base\n  {ctx}"


@pytest.mark.parametrize("op", list(VIEWS))
def test_view_ops(op, rng, seed):
    fn = VIEWS[op]
    for dtype in ("float32", "int64", "bool", "bfloat16"):
        for layout in ("contig", "transposed", "permuted", "sliced", "offset", "expanded"):
            x = make_pair((4, 6, 5), dtype, layout, rng)
            _check_view(op, fn, x, seed, layout)


@pytest.mark.parametrize("op", list(COPIES))
def test_copying_ops(op, rng, seed):
    fn = COPIES[op]
    for dtype in ("float32", "int8", "bool", "float16", "bfloat16"):
        for layout in ("contig", "transposed", "sliced", "expanded"):
            x = make_pair((4, 6, 5), dtype, layout, rng)
            _check_view(op, fn, x, seed, layout)


# (as_strided views that overlap themselves are left out: torch documents in-place results on them as undefined,
#  and its CPU loop re-reads elements it has already written)
@pytest.mark.parametrize("op", ["view_flat", "reshape", "transpose", "select", "narrow", "expand", "permute",
                                "unsqueeze", "squeeze_dim", "split", "unbind", "diagonal", "as_strided_offset",
                                "detach", "alias_ellipsis", "unfold"])
def test_writes_through_views(op, rng, seed):
    """Writing into a view writes into the base (and bumps the shared version counter); writing into the base
    shows through the view."""
    fn = VIEWS[op]
    base = make_pair((4, 6, 5), "float32", "contig", rng)
    vo, vt = fn(tracegrad, base[0]), fn(torch, base[1])
    vo = vo[0] if isinstance(vo, tuple) else vo
    vt = vt[0] if isinstance(vt, tuple) else vt
    ctx = describe(op, [base[0]], seed)
    v0 = base[0]._version, base[1]._version
    try:
        vt.mul_(2)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
            vo.mul_(2)
        assert "more than one element" in str(e)
        return
    vo.mul_(2)
    assert (base[0]._version - v0[0]) == (base[1]._version - v0[1]) == 1, ctx
    assert vo._version == vt._version == base[1]._version, ctx
    assert_same(base[0], base[1], ctx + "\n  (base after writing the view)", strides=True)
    base[0].add_(1)
    base[1].add_(1)
    assert_same(vo, vt, ctx + "\n  (view after writing the base)", strides=True)


def test_view_compatibility(rng):
    """view works on non-contiguous tensors when the new shape only splits or merges compatible dims."""
    x = make_pair((4, 6), "float32", "contig", rng)
    cases = [
        (lambda L, x: x[:, :3].view(2, 2, 3)), (lambda L, x: x[:, :3].view(12)), (lambda L, x: x.t().view(6, 4)),
        (lambda L, x: x.t().view(3, 2, 4)), (lambda L, x: x.t().view(6, 2, 2)), (lambda L, x: x[::2].view(2, 3, 2)),
        (lambda L, x: x[::2].view(12)), (lambda L, x: x[:, ::2].view(4, 3, 1)), (lambda L, x: x[:, None].view(4, 6)),
        (lambda L, x: x[:1].expand(3, 6).view(3, 2, 3)), (lambda L, x: x[:1].expand(3, 6).view(18)),
        (lambda L, x: x[:0].view(0, 2, 3)), (lambda L, x: x[:0].view(-1)), (lambda L, x: x[1, 1].view(1, 1)),
        (lambda L, x: x[1, 1].view(-1)), (lambda L, x: x[1, 1].view(())),
    ]
    for i, fn in enumerate(cases):
        check_op(f"view case {i}", fn, [x], strides=True, sharing=0)


def test_reshape_copies_only_when_it_must(rng):
    x = make_pair((4, 6), "float32", "contig", rng)
    for i, fn in enumerate([lambda L, x: x.reshape(24), lambda L, x: x.t().reshape(24),
                            lambda L, x: x.t().reshape(6, 2, 2), lambda L, x: x.t().reshape(3, 2, 4),
                            lambda L, x: x[:, ::2].reshape(12), lambda L, x: x[:, ::2].reshape(2, 2, 3),
                            lambda L, x: x[:1].expand(3, 6).reshape(18), lambda L, x: x.reshape(4, 6)]):
        check_op(f"reshape case {i}", fn, [x], strides=True, sharing=0)


def test_contiguous_returns_self_when_contiguous(rng):
    x = make_pair((3, 4), "float32", "contig", rng)
    assert x[0].contiguous() is x[0] and x[1].contiguous() is x[1]
    t = x[0].t()
    c = t.contiguous()
    assert c is not t and c.is_contiguous() and not shares(c, t)
    assert_same(c, x[1].t().contiguous(), strides=True)
    # size-1 dims do not matter; zero-size tensors are contiguous
    for fn in (lambda L: L.zeros(3, 1).t(), lambda L: L.zeros(0, 3).t(), lambda L: L.zeros(1, 4)[:, ::2],
               lambda L: L.zeros(2, 3)[:, :1], lambda L: L.zeros(5)[::2], lambda L: L.zeros(2, 1, 3).permute(1, 0, 2)):
        assert fn(tracegrad).is_contiguous() == fn(torch).is_contiguous()
        assert fn(tracegrad).contiguous().stride() == fn(torch).contiguous().stride()


def test_size_stride_metadata(rng):
    x = make_pair((2, 3, 4), "float64", "permuted", rng)
    o, t = x
    assert o.size() == t.size() and isinstance(o.size(), tracegrad.Size)
    assert o.shape == tuple(t.shape) and o.size(1) == t.size(1) and o.size(-1) == t.size(-1)
    assert o.stride() == t.stride() and o.stride(0) == t.stride(0) and o.stride(-1) == t.stride(-1)
    assert o.dim() == t.dim() == o.ndim == o.ndimension()
    assert o.numel() == t.numel() == o.nelement()
    assert o.element_size() == t.element_size() and o.itemsize == t.itemsize and o.nbytes == t.nbytes
    assert o.storage_offset() == t.storage_offset()
    assert len(o) == len(t)
    s = tracegrad.Size([5, 3])
    assert repr(s) == "tracegrad.Size([5, 3])" == str(s)
    assert s == (5, 3) and isinstance(s, tuple) and s.numel() == 15
    assert isinstance(s[0:1], tracegrad.Size) and isinstance(s + (2,), tracegrad.Size)
    assert repr(torch.Size([5, 3])).replace("torch", "tracegrad") == repr(s)


def test_inplace_shape_ops(rng):
    """t_, transpose_, unsqueeze_, squeeze_ change the tensor's own shape and strides and return it."""
    for name, fn in [("t_", lambda L, x: x.t_()), ("transpose_", lambda L, x: x.transpose_(0, 1)),
                     ("unsqueeze_", lambda L, x: x.unsqueeze_(1)), ("squeeze_", lambda L, x: x.unsqueeze(0).squeeze_(0)),
                     ("swapaxes_", lambda L, x: x.swapaxes_(0, 1))]:
        o, t = make_pair((3, 4), "float32", "contig", rng)
        ro, rt = fn(tracegrad, o), fn(torch, t)
        assert (ro is o) == (rt is t), name
        assert_same(ro, rt, name, strides=True)
        assert_same(o, t, name + " (the tensor itself)", strides=True)


# ---- random shapes and layouts --------------------------------------------------------------------
def _factorizations(n, k, draw):
    """A random k-dim shape with `n` elements."""
    out = []
    for _ in range(k - 1):
        divs = [d for d in range(1, n + 1) if n % d == 0]
        d = draw(st.sampled_from(divs))
        out.append(d)
        n //= d
    out.append(n)
    return tuple(out)


@st.composite
def view_case(draw):
    nd = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    numel = int(np.prod(shape)) if shape else 1
    new = _factorizations(numel, draw(st.integers(1, 5)), draw)
    if draw(st.booleans()):
        i = draw(st.integers(0, len(new) - 1))
        new = new[:i] + (-1,) + new[i + 1:]
    perm = tuple(draw(st.permutations(range(nd))))
    return shape, new, perm


@given(case=view_case(), layout=st.sampled_from(sorted(LAYOUTS)), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2 ** 31))
def test_view_reshape_permute_random(case, layout, dtype, seed):
    """view (or torch's error), reshape (sharing iff torch shares), permute and contiguous on random layouts."""
    shape, new, perm = case
    x = make_pair(shape, dtype, layout, np.random.default_rng(seed))
    check_op("view", lambda L, x: x.view(new), [x], seed=seed, strides=True, sharing=0, new=new)
    check_op("reshape", lambda L, x: x.reshape(new), [x], seed=seed, strides=True, sharing=0, new=new)
    check_op("permute", lambda L, x: x.permute(perm), [x], seed=seed, strides=True, sharing=0, perm=perm)
    check_op("permute.contiguous", lambda L, x: x.permute(perm).contiguous(), [x], seed=seed, strides=True,
             sharing=0, perm=perm)
    check_op("permute.reshape", lambda L, x: x.permute(perm).reshape(new), [x], seed=seed, strides=True,
             sharing=0, perm=perm, new=new)


@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
       layout=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2 ** 31), data=st.data())
def test_slicing_views_random(shape, layout, seed, data):
    """Basic indexing chains (int, slice with step, None, ...) are views with torch's strides and offset."""
    x = make_pair(shape, "float32", layout, np.random.default_rng(seed))
    idx = []
    for n in shape:
        kind = data.draw(st.sampled_from(["slice", "int", "none", "full"]))
        if kind == "int" and n:
            idx.append(data.draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            a = data.draw(st.integers(-n - 1, n + 1))
            b = data.draw(st.integers(-n - 1, n + 1))
            idx.append(slice(a, b, data.draw(st.integers(1, 3))))
        elif kind == "none":
            idx.extend([None, slice(None)])
        else:
            idx.append(slice(None))
    if idx and data.draw(st.booleans()):
        idx[data.draw(st.integers(0, len(idx) - 1))] = Ellipsis
    idx = tuple(idx)
    _check_view("getitem", lambda L, x: x[idx], x, seed, layout)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_harness_round_trip(layout, dtype, rng):
    """util.to_torch / util.from_torch (used by other test files) keep values, dtype, strides and offset."""
    from util import from_torch, to_torch

    o, t = make_pair((3, 4, 2), dtype, layout, rng)
    mirrored = to_torch(o)
    assert mirrored.stride() == t.stride() and mirrored.storage_offset() == t.storage_offset()
    assert torch.equal(mirrored, t)
    back = from_torch(t)
    assert_same(back, t, "from_torch", strides=True)
    assert back.storage_offset() == t.storage_offset()
